/*
 * SETATTR of mode and owner on the local backend runs on the event loop:
 * chmod and chown of the pinned object are short inode changes, and a trip
 * through libuv's thread pool for each was most of the SETATTR's latency
 * (bench/README.md, session 34). Pinned here by blocking every thread of
 * the pool (opens of a FIFO for reading, which wait for a writer) and
 * asking the SETATTR meanwhile: it must complete without the pool.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { localDirs, openLocal } from './local-helpers.ts'

/** libuv's pool size: UV_THREADPOOL_SIZE when set, else 4 (libuv's default). */
const POOL = Number(process.env.UV_THREADPOOL_SIZE ?? 4)
const BOUND_MS = 10_000

/** Every pool thread waits on an open of `fifo` for reading; the returned function gives them a writer and closes all. */
function blockPool(fifo: string): { release: () => Promise<void> } {
  const opens = Array.from({ length: POOL }, () => fs.promises.open(fifo, 'r'))
  return {
    release: async () => {
      // A writer lets every waiting reader's open complete (fifo(7)).
      const w = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK)
      const handles = await Promise.all(opens)
      fs.closeSync(w)
      await Promise.all(handles.map(h => h.close()))
    },
  }
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => { reject(new Error(`${what}: not done after ${String(ms)} ms with the thread pool busy`)) }, ms)
  })
  return Promise.race([p, late]).finally(() => { clearTimeout(timer) })
}

t.test('SETATTR of mode and owner completes while every thread-pool thread is busy', async (t) => {
  const dirs = localDirs()
  const vfs = openLocal(dirs)
  t.teardown(() => vfs.close())
  const owner = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 }
  const file = await vfs.create(vfs.root(), Buffer.from('f'), { how: 'guarded', attr: { mode: 0o600 } }, owner)
  const dir = await vfs.mkdir(vfs.root(), Buffer.from('d'), { mode: 0o700 }, owner)
  const fifo = path.join(dirs.root, '..', `pool-fifo-${path.basename(dirs.root)}`)
  t.equal(spawnSync('mkfifo', [fifo]).status, 0, 'mkfifo')
  t.teardown(() => { fs.rmSync(fifo, { force: true }) })

  const pool = blockPool(fifo)
  // Queued behind the blocked opens: it cannot finish before they do, which shows the pool is held.
  let statDone = false
  const stat = fs.promises.stat(dirs.root).then(() => { statDone = true })
  try {
    const f = await within(vfs.setattr(file.ref, { mode: 0o640, uid: owner.uid, gid: owner.gid }), BOUND_MS, 'SETATTR of a file')
    t.equal(f.after.mode & 0o7777, 0o640)
    const d = await within(vfs.setattr(dir.ref, { mode: 0o750 }), BOUND_MS, 'SETATTR of a directory')
    t.equal(d.after.mode & 0o7777, 0o750)
    t.equal(statDone, false, 'the pool was busy throughout (a stat queued before the SETATTRs has not finished)')
  } finally {
    await pool.release()
    await stat
  }
  t.equal(fs.statSync(path.join(dirs.root, 'f')).mode & 0o7777, 0o640, 'the mode is on the host file')
  t.equal(fs.statSync(path.join(dirs.root, 'd')).mode & 0o7777, 0o750, 'and on the host directory')
})
