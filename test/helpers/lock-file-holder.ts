/**
 * The other process of the lock-file tests (common/lock-file.ts): argv[2] is the lock's path,
 * argv[3] its purpose. Prints "ready", waits for "go" on stdin, tries to take the lock, prints
 * "held PID" or "busy REASON PID", then waits: "release" on stdin releases it and prints
 * "released"; otherwise it holds until killed. Run with `node --import tsx`.
 */
import { createInterface } from 'node:readline'
import { acquireLockFile, LockBusyError } from '../../common/lock-file.ts'
import type { LockFile } from '../../common/lock-file.ts'

const [path = '', purpose = ''] = process.argv.slice(2)
let lock: LockFile | null = null
process.stdout.write('ready\n')
for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'go') {
    try {
      lock = await acquireLockFile(path, { purpose })
      process.stdout.write(`held ${process.pid}\n`)
    } catch (err) {
      if (!(err instanceof LockBusyError)) throw err
      process.stdout.write(`busy ${err.reason} ${err.holder?.pid ?? 0}\n`)
    }
  } else if (line === 'release' && lock !== null) {
    await lock.release()
    process.stdout.write('released\n')
  }
}
// stdin closed: keep holding until killed (the test kills with SIGKILL: no clean-up).
setInterval(() => undefined, 1 << 30)
