/*
 * fsx in spirit: one seeded random sequence of open / write at random
 * offsets / read / truncate / ftruncate / stat / rename / unlink (also of
 * open files) / close, applied to a local directory and to the mount;
 * every result (bytes read, sizes, error codes) and the final tree must be
 * the same.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import type { FileHandle } from 'node:fs/promises'
import { open, rename, stat, truncate, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { TEST_OPTS, canFuse, exportDir, manifest, mountFuse, mountpointDir, patternBytes } from '../helpers/fuse.ts'
import { prng } from '../helpers/prng.ts'

const SEED = 0x5eed_f5c5
const STEPS = 600
const NAMES = ['a', 'b', 'c', 'd']
const MAX_OFFSET = 1_500_000
const MAX_LEN = 150_000

async function attempt(fn: () => Promise<string>): Promise<string> {
  try {
    return await fn()
  } catch (err) {
    return `error ${String((err as NodeJS.ErrnoException).code)}`
  }
}

/** Run the sequence in dir; returns one line per step. */
async function fsx(dir: string, seed: number): Promise<string[]> {
  const rand = prng(seed)
  const int = (n: number): number => Math.floor(rand() * n)
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T
  const handles: (FileHandle | null)[] = [null, null, null]
  const log: string[] = []
  for (let step = 0; step < STEPS; step++) {
    const slot = int(handles.length)
    const h = handles[slot] ?? null
    const name = pick(NAMES)
    const op = int(10)
    let line: string
    if (h === null || op === 0) {
      if (h !== null) await h.close()
      const r = await attempt(async () => {
        handles[slot] = await open(join(dir, name), rand() < 0.7 ? 'a+' : 'r+').catch(async () => open(join(dir, name), 'w+'))
        return `open ${name}`
      })
      line = r
    } else if (op <= 3) {
      const off = int(MAX_OFFSET)
      const len = 1 + int(MAX_LEN)
      line = await attempt(async () => `write ${String((await h.write(patternBytes(len, step + 1), 0, len, off)).bytesWritten)}@${String(off)}`)
    } else if (op <= 5) {
      const off = int(MAX_OFFSET + MAX_LEN)
      const buf = Buffer.alloc(1 + int(MAX_LEN * 2))
      line = await attempt(async () => {
        const r = await h.read(buf, 0, buf.length, off)
        return `read ${String(r.bytesRead)}@${String(off)} ${createHash('sha256').update(buf.subarray(0, r.bytesRead)).digest('hex').slice(0, 16)}`
      })
    } else if (op === 6) {
      const size = int(MAX_OFFSET)
      line = await attempt(async () => {
        if (rand() < 0.5) await h.truncate(size)
        else await truncate(join(dir, name), size)
        return `truncate ${String(size)}`
      })
    } else if (op === 7) {
      line = await attempt(async () => `fstat ${String((await h.stat()).size)} stat ${name} ${String((await stat(join(dir, name))).size)}`)
    } else if (op === 8) {
      const to = pick(NAMES)
      line = await attempt(async () => {
        await rename(join(dir, name), join(dir, to))
        return `rename ${name} ${to}`
      })
    } else {
      line = await attempt(async () => {
        await unlink(join(dir, name))
        return `unlink ${name}`
      })
    }
    log.push(`${String(step)} [${String(slot)}] ${line}`)
  }
  for (const h of handles) if (h !== null) await h.close()
  return log
}

t.test('a seeded random operation sequence gives the same results on the mount as locally', { skip: canFuse ? false : 'needs root and FUSE' }, async t => {
  const base = t.testdir({ local: {} })
  const ex = await exportDir(t, base)
  const mnt = mountpointDir(t)
  await mountFuse(t, ex.source, mnt, `${ex.portOpts},${TEST_OPTS}`)
  const local = await fsx(join(base, 'local'), SEED)
  const mounted = await fsx(mnt, SEED)
  t.strictSame(mounted, local, 'every step')
  t.strictSame(await manifest(mnt, { fileTimes: false }), await manifest(join(base, 'local'), { fileTimes: false }), 'the final tree')
  t.strictSame(await manifest(ex.dir, { fileTimes: false }), await manifest(join(base, 'local'), { fileTimes: false }), 'no hidden files left on the server')
})
