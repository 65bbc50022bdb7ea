/*
 * Damage fsck-repair-random.test.ts found that our check missed while e2fsck did not (each a seed and
 * a round of that test, replayed here so it stays found): a root extent header whose eh_max is
 * below what e2fsprogs accepts, a regular file's i_size past what 32-bit extent block numbers
 * reach, and a '.' entry whose name is not NUL-terminated (which the repair corrects). Each must
 * be seen by our check (the code named), and a repair may call the image corrected (exit 1) only
 * when e2fsck -fn agrees.
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { scratch, seededBytes } from './format-helpers.ts'
import { e2fsck, SMALL_METADATA_BYTES, smallDamageBase } from './fsck-helpers.ts'
import { codes, repairFile, tell } from './fsck-repair-helpers.ts'

const dir = scratch(t, 'fsck-repair-found')
const { original } = smallDamageBase(dir)

/** The image round `round` of fsck-repair-random.test.ts damages with `seed` (the same draws, in order). */
function damaged(seed: number, round: number): Buffer {
  const rand = seededBytes(seed)
  let bytes = original
  for (let i = 0; i <= round; i++) {
    bytes = Buffer.from(original)
    const r = rand(64)
    const n = 1 + ((r[0] ?? 0) % 4)
    for (let k = 0; k < n; k++) {
      const at = (r.readUInt32LE(4 + k * 3) >>> 8) % (k % 2 === 0 ? 48 * 1024 : SMALL_METADATA_BYTES)
      bytes[1024 + (at % (SMALL_METADATA_BYTES - 1024))] = r[k + 1] ?? 0
    }
  }
  return bytes
}

const FOUND = [
  { seed: 1289727889, round: 3, code: 'EXTENT_BAD_HEADER', what: "the root directory's eh_max damaged from 4 to 1", corrected: false },
  { seed: 11, round: 287, code: 'INODE_BAD_SIZE', what: 'a file whose i_size is 51,677,046,512,912 bytes on 1 KiB blocks', corrected: false },
  { seed: 22, round: 173, code: 'DIR_DOT_NOT_NUL', what: "the root's '.' entry not NUL-terminated", corrected: true },
]

for (const f of FOUND) {
  t.test(`seed ${f.seed} round ${f.round}: ${f.what}`, async (t) => {
    const image = path.join(dir, `found-${f.seed}-${f.round}.img`)
    fs.writeFileSync(image, damaged(f.seed, f.round))
    t.not(e2fsck(image).code, 0, 'e2fsck -fn finds the damage')
    const res = await repairFile(image)
    tell(t, res)
    const seen = res.before.problems.map((p) => p.code)
    t.ok(seen.includes(f.code), `our check finds it: ${f.code} among ${seen.join(', ')}`)
    // The root unread (its extent tree refused) hides the entries naming lost+found and the others: their
    // counts, short by those, must not be written (a count below the true one frees a file still named).
    if (f.code === 'EXTENT_BAD_HEADER') t.notOk(codes(res, 'fixed').includes('LINK_COUNT_WRONG'), 'no link count lowered from a count that missed the root\'s entries')
    if (f.corrected) t.equal(res.exitCode, 1, 'corrected (the NUL written, the checksum with it)')
    if (res.exitCode === 1) t.equal(e2fsck(image).code, 0, 'corrected: e2fsck -fn agrees the image is clean')
    else t.equal(res.exitCode, 4, 'or left, said so (exit 4)')
  })
}
