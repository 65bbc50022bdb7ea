/* Host stat results as Vfs attributes, and the generation derived from an inode's birth time. */
import fs from 'node:fs'
import type { BigIntStats } from 'node:fs'
import type { Attr, FileType, Timespec } from '../types.ts'

const c = fs.constants
const NS = 1_000_000_000n

export function fileType(mode: number | bigint): FileType {
  switch (Number(mode) & c.S_IFMT) {
    case c.S_IFREG: return 'file'
    case c.S_IFDIR: return 'dir'
    case c.S_IFLNK: return 'symlink'
    case c.S_IFBLK: return 'block'
    case c.S_IFCHR: return 'char'
    case c.S_IFSOCK: return 'socket'
    default: return 'fifo'
  }
}

function ts(ns: bigint): Timespec {
  const sec = ns / NS
  const nsec = ns % NS
  // Before 1970 the remainder is negative; nfstime3 cannot say that anyway, but keep nsec in range.
  if (nsec < 0n) return { sec: Number(sec - 1n), nsec: Number(nsec + NS) }
  return { sec: Number(sec), nsec: Number(nsec) }
}

/** Linux dev_t encoding (glibc gnu_dev_major/minor). */
export function splitDev(dev: bigint): { major: number; minor: number } {
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn))
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn))
  return { major, minor }
}

/** `id` is the object's device-qualified id (devices.ts): fileids must be unique within the export's one fsid. */
export function toAttr(st: BigIntStats, gen: number, id: bigint): Attr {
  const type = fileType(st.mode)
  const dev = type === 'block' || type === 'char'
  return {
    type,
    mode: Number(st.mode) & 0o7777,
    nlink: Number(st.nlink),
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: st.size,
    used: st.blocks * 512n,
    rdev: dev ? splitDev(st.rdev) : { major: 0, minor: 0 },
    fileid: id,
    gen,
    atime: ts(st.atimeNs),
    mtime: ts(st.mtimeNs),
    ctime: ts(st.ctimeNs),
  }
}

/** Up to 128 KiB allocated: unlinking or closing it for the last time frees little, in microseconds. */
const SMALL_BLOCKS = 256n

export function isSmall(st: BigIntStats): boolean {
  return st.blocks <= SMALL_BLOCKS
}

/** FNV-1a 32 over the 8 bytes of the birth time: a reused inode number gets another value. */
export function genFromBirth(st: BigIntStats): number | null {
  const birth = st.birthtimeNs
  // statx without STATX_BTIME (the file system does not keep it) reports 0.
  if (birth === 0n) return null
  let h = 0x811c9dc5
  let v = BigInt.asUintN(64, birth)
  for (let i = 0; i < 8; i++) {
    h ^= Number(v & 0xffn)
    h = Math.imul(h, 0x01000193) >>> 0
    v >>= 8n
  }
  return h
}

/** A random generation for file systems without birth times, kept in the index. */
export function randomGen(): number {
  return (Math.random() * 0x1_0000_0000) >>> 0
}
