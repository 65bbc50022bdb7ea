/*
 * Random vfs attributes for the reply encoders' byte-for-byte tests: every file type, the ends of
 * each XDR range, times before 1970 and after 2106 (clamped by nfstime), fractional seconds and
 * the ends of nsec. Drawn from the caller's seeded generator (the test prints its seed).
 */
import type { Attr, FileType } from '../../vfs/types.ts'

export interface RandomValues {
  int: (n: number) => number
  pick: <T>(xs: readonly T[]) => T
  u32: () => number
  u64: () => bigint
  attr: () => Attr
}

const TYPES: readonly FileType[] = ['file', 'dir', 'block', 'char', 'symlink', 'socket', 'fifo']

export function randomValues(rand: () => number): RandomValues {
  const int = (n: number): number => Math.floor(rand() * n)
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T
  const u32 = (): number => pick([0, 1, 0xffff_ffff, int(2 ** 32)])
  const u64 = (): bigint => pick([0n, 1n, 0xffff_ffff_ffff_ffffn, 2n ** 63n, BigInt(int(2 ** 32)) * 2n ** 32n + BigInt(int(2 ** 32))])
  const sec = (): number => pick([-1, -(2 ** 40), 0, 2 ** 32 - 1, 2 ** 32, 2 ** 45, 1_700_000_000.75, int(2 ** 32)])
  const time = (): { sec: number; nsec: number } => ({ sec: sec(), nsec: pick([0, 999_999_999, int(1_000_000_000)]) })
  const attr = (): Attr => ({
    type: pick(TYPES),
    mode: int(0x10000),
    nlink: u32(),
    uid: u32(),
    gid: u32(),
    size: u64(),
    used: u64(),
    rdev: { major: u32(), minor: u32() },
    fileid: u64(),
    gen: u32(),
    atime: time(),
    mtime: time(),
    ctime: time(),
  })
  return { int, pick, u32, u64, attr }
}
