/*
 * fsck --repair on randomly damaged images (seeded and printed): bytes
 * written over the metadata at the front of a small image, as in
 * fsck-corrupt.test.ts. Each repair ends in a verdict (exit 0, 1 or 4) or an
 * operational error with a code (FormatError, BlockDevError), never anything
 * else; and whenever it says errors corrected (exit 1), e2fsck -fn must call
 * the image clean too. FSCK_ROUNDS=n runs more rounds.
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { BlockDevError } from '../../../vfs/engine/blockdev/block-device.ts'
import { FormatError } from '../../../vfs/engine/format/errors.ts'
import { scratch, seededBytes } from './format-helpers.ts'
import { e2fsck, SMALL_METADATA_BYTES, smallDamageBase } from './fsck-helpers.ts'
import { repairFile } from './fsck-repair-helpers.ts'

const ROUNDS = Number(process.env.FSCK_ROUNDS ?? 25)

t.setTimeout(300_000)
const seed = Number(process.env.FSCK_SEED ?? Date.now() % 2 ** 31)
t.comment(`seed ${seed} (FSCK_SEED=${seed} repeats it)`)
const dir = scratch(t, 'fsck-repair-random')
const { original } = smallDamageBase(dir)

t.test(`${ROUNDS} damaged images: a verdict or a coded error; exit 1 only when e2fsck -fn agrees it is clean`, async (t) => {
  const rand = seededBytes(seed)
  const image = path.join(dir, 'case.img')
  const seen = new Map<string, number>()
  for (let round = 0; round < ROUNDS; round++) {
    const bytes = Buffer.from(original)
    const r = rand(64)
    // One to four bytes: a few damages at a time, which the repair has a chance to answer.
    const n = 1 + ((r[0] ?? 0) % 4)
    for (let k = 0; k < n; k++) {
      const at = (r.readUInt32LE(4 + k * 3) >>> 8) % (k % 2 === 0 ? 48 * 1024 : SMALL_METADATA_BYTES)
      bytes[1024 + (at % (SMALL_METADATA_BYTES - 1024))] = r[k + 1] ?? 0
    }
    fs.writeFileSync(image, bytes)
    let key: string
    try {
      const res = await repairFile(image)
      key = `exit ${res.exitCode}`
      if (res.exitCode === 1) {
        const e2 = e2fsck(image)
        if (e2.code !== 0) t.fail(`round ${round}: we corrected and call it clean, e2fsck -fn exits ${e2.code}\n${res.repairs.map((x) => `${x.outcome} ${x.code}: ${x.message}`).join('\n')}\n${e2.out}`)
      }
    } catch (err) {
      if (!(err instanceof FormatError) && !(err instanceof BlockDevError)) {
        t.fail(`round ${round}: ${err instanceof Error ? err.stack : String(err)}`)
        continue
      }
      key = err.code
    }
    seen.set(key, (seen.get(key) ?? 0) + 1)
  }
  t.comment(`outcomes: ${[...seen].map(([k, v]) => `${k} ${v}`).join(', ')}`)
  t.equal([...seen.values()].reduce((a, b) => a + b, 0), ROUNDS, 'every round ended in a verdict or a coded error')
})
