/*
 * A pool's lock file: the CLI (label) and a manager (allocate, mark full) change pool.json from
 * different processes; each change is read-modify-write under this lock. The file holds the
 * holder's pid, so a lock left by a dead process is taken over.
 */
import { open, readFile, unlink } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { DmaError, isErrno } from '../errors.ts'

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return isErrno(err, 'EPERM')
  }
}

/** Runs `fn` holding the lock at `path`; waits up to `waitMs` for another holder. */
export async function withLock<T>(path: string, fn: () => Promise<T>, waitMs = 10_000): Promise<T> {
  const deadline = Date.now() + waitMs
  for (;;) {
    try {
      const fh = await open(path, 'wx', 0o600)
      await fh.writeFile(String(process.pid))
      await fh.close()
      break
    } catch (err) {
      if (!isErrno(err, 'EEXIST')) throw err
      const holder = Number((await readFile(path, 'utf8').catch(() => '')).trim())
      if (Number.isInteger(holder) && holder > 0 && !alive(holder)) {
        await unlink(path).catch(() => undefined)
        continue
      }
      if (Date.now() > deadline) throw new DmaError('DMA_BUSY', `${path} is held by process ${holder}`)
      await sleep(20)
    }
  }
  try {
    return await fn()
  } finally {
    await unlink(path).catch(() => undefined)
  }
}
