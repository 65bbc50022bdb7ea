/* Seeded random Changes (vfs/replica/change.ts) of every kind, for the codec's and the log's round trips. */
import type { Change, ChangeTimes } from '../../../vfs/replica/change.ts'
import type { FileRef, Timespec } from '../../../vfs/types.ts'
import { prng } from '../../helpers/prng.ts'

export type RandomChange = () => Change

/** `bigWrites`: a write's length may reach 1 MiB and carry its data (the codec's cap); the log's tests keep them small. */
export function randomChanges(seed: number, bigWrites = true): RandomChange {
  const r = prng(seed)
  const int = (n: number): number => Math.floor(r() * n)
  const u32 = (): number => int(2 ** 32)
  const u64 = (): bigint => (BigInt(u32()) << 32n) | BigInt(u32())
  const ref = (): FileRef => ({ id: r() < 0.5 ? BigInt(int(1000) + 1) : u64(), gen: u32() })
  const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => int(256)))
  const name = (): Buffer => {
    // Any bytes but '/' and NUL, never '.' or '..'; lengths up to the 255-byte cap.
    const len = r() < 0.1 ? 255 : 1 + int(20)
    const b = Buffer.from(Array.from({ length: len }, () => 1 + int(254)))
    for (let i = 0; i < b.length; i++) if (b[i] === 0x2f || b[i] === 0x2e) b[i] = 0x61
    return b
  }
  const time = (): Timespec => ({ sec: r() < 0.1 ? -int(2 ** 31) : int(2 ** 40), nsec: int(1e9) })
  const times = (): ChangeTimes[] => Array.from({ length: int(5) }, () => ({ ref: ref(), atime: time(), mtime: time() }))
  const obj = () => ({ dir: ref(), name: name(), ref: ref(), mode: int(0o10000), uid: u32(), gid: u32() })
  const kinds: (() => Change)[] = [
    () => ({ op: 'create', obj: obj(), exclusive: r() < 0.5 ? bytes(8) : null, times: times() }),
    () => ({ op: 'mkdir', obj: obj(), times: times() }),
    () => ({ op: 'symlink', obj: obj(), target: bytes(r() < 0.1 ? 4096 : int(100)), times: times() }),
    () => ({ op: 'mknod', obj: obj(), type: (['block', 'char', 'socket', 'fifo'] as const)[int(4)] ?? 'fifo', rdev: { major: u32(), minor: u32() }, times: times() }),
    () => {
      const length = 1 + int(bigWrites && r() < 0.05 ? 1 << 20 : 8192)
      return { op: 'write', ref: ref(), offset: u64() >> 2n, length, data: bigWrites && r() < 0.3 ? bytes(length) : null, times: times() }
    },
    () => {
      const set: Change & { op: 'setattr' } = { op: 'setattr', ref: ref(), set: {}, times: times() }
      if (r() < 0.5) set.set.mode = int(0o10000)
      if (r() < 0.5) set.set.uid = u32()
      if (r() < 0.5) set.set.gid = u32()
      if (r() < 0.5) set.set.size = u64() >> 1n // within a signed 64-bit off_t: larger sizes are refused (change-codec.ts)
      if (r() < 0.5) set.set.atime = time()
      if (r() < 0.5) set.set.mtime = time()
      return set
    },
    () => ({ op: 'remove', dir: ref(), name: name(), times: times() }),
    () => ({ op: 'rmdir', dir: ref(), name: name(), times: times() }),
    () => ({ op: 'rename', fromDir: ref(), fromName: name(), toDir: ref(), toName: name(), times: times() }),
    () => ({ op: 'link', ref: ref(), dir: ref(), name: name(), times: times() }),
  ]
  return () => {
    const kind = kinds[int(kinds.length)]
    if (kind === undefined) throw new Error('unreachable: int() < kinds.length')
    return kind()
  }
}
