/*
 * The other process of the change log's crash test: appends to the log in
 * DIR with 8 concurrent appenders, forever, and prints each seq once its
 * durable() has resolved. The test SIGKILLs it at a random moment and checks
 * every printed change is in the reopened log. Run with `node --import tsx`.
 *
 *   log-appender.ts DIR SEGMENT_BYTES [pieces]
 *
 * `pieces` writes each group in 256-byte pieces with a turn of the event
 * loop between them (an injected LogIo), so the kill most likely lands
 * mid-write and leaves a torn record, as a kill during a large write(2) can.
 */
import { ChangeLog } from '../../../server/replication/change-log.ts'
import type { LogIo } from '../../../server/replication/change-log.ts'
import { fdatasync, writeAll } from '../../../server/replication/log-segment.ts'
import type { Change } from '../../../vfs/replica/change.ts'

/** The change numbered seq: a symlink whose name and target say seq, of varying size, so records straddle writes. */
export function changeFor(seq: bigint): Change {
  const n = Number(seq)
  return {
    op: 'symlink',
    obj: { dir: { id: 1n, gen: 0 }, name: Buffer.from(`f${String(n)}`), ref: { id: seq + 1n, gen: 1 }, mode: 0o777, uid: 0, gid: 0 },
    target: Buffer.alloc((n * 37) % 3000, n % 251),
    times: [{ ref: { id: 1n, gen: 0 }, atime: { sec: n, nsec: 0 }, mtime: { sec: n, nsec: 1 } }],
  }
}

async function main(): Promise<void> {
  const [dir, segmentBytes, mode] = process.argv.slice(2)
  if (dir === undefined) throw new Error('usage: log-appender.ts DIR SEGMENT_BYTES [pieces]')
  const pieces: LogIo = {
    async write(fd, data, position) {
      for (let at = 0; at < data.length; at += 256) {
        await writeAll(fd, data.subarray(at, at + 256), position + at)
        await new Promise((resolve) => setImmediate(resolve))
      }
    },
    sync: fdatasync,
  }
  const log = await ChangeLog.open({ dir, exportId: 3, segmentBytes: Number(segmentBytes ?? 65536), ...(mode === 'pieces' ? { io: pieces } : {}) })
  const appender = async (): Promise<void> => {
    for (;;) {
      const seq = log.append(changeFor(log.lastSeq() + 1n))
      await log.durable(seq)
      process.stdout.write(`${String(seq)}\n`)
    }
  }
  await Promise.all(Array.from({ length: 8 }, appender))
}

if (process.argv[1]?.endsWith('log-appender.ts') === true) await main()
