/* eslint-disable @typescript-eslint/no-non-null-assertion -- the hot loops index typed arrays inside bounds their loop conditions prove; `!` costs nothing at run time, a `?? 0` would */
/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), slice-by-8, in our own code because
 * vfs/ may import only node:* (test/architecture.test.ts).
 *
 * Two functions, because ext4 and the rest of the world disagree on the pre/post inversion:
 *
 * - `crc32cUpdate(crc, data)` is the raw register update with no inversion at either end. It is
 *   the kernel's `crc32c(crc, p, len)` / e2fsprogs' `ext2fs_crc32c_le(crc, p, len)`, so
 *   chaining is exact: `crc32cUpdate(crc32cUpdate(s, a), b) === crc32cUpdate(s, a ++ b)`.
 * - `crc32c(data, seed = 0)` is the standard (iSCSI, RFC 3720) CRC-32C: invert in, update,
 *   invert out, so `crc32c("123456789") === 0xE3069283`. A seed continues a previous standard
 *   value: `crc32c(b, crc32c(a)) === crc32c(a ++ b)`.
 *
 * ext4 (metadata_csum) and jbd2 (journal_checksum_v3) use the raw form seeded with ~0 and never
 * invert the result (kernel fs/ext4/ext4.h ext4_chksum; e2fsprogs lib/ext2fs/csum.c):
 *   superblock s_checksum (0x3FC) = crc32cUpdate(0xFFFFFFFF, sb[0, 0x3FC))
 *   per-fs seed s_csum_seed       = crc32cUpdate(0xFFFFFFFF, s_uuid)   (unless csum_seed feature)
 *   inode, dir block, extent, bitmap, group descriptor checksums chain from that seed, e.g.
 *   inode: crc32cUpdate(crc32cUpdate(crc32cUpdate(seed, le32 ino), le32 gen), inode bytes)
 * Note crc32cUpdate(0xFFFFFFFF, x) === ~crc32c(x) >>> 0: ext4's value is the bitwise NOT of the
 * standard one.
 */

import { nativeIo } from '../native-io.ts'

const POLY = 0x82f63b78

/** The SSE4.2 update where the native I/O helper offers it (vfs/native/io.c); below NATIVE_MIN bytes the call costs more than it saves. */
const native = nativeIo()?.crc32c ?? null
const NATIVE_MIN = 256

/** TABLES[k * 256 + n]: the CRC of byte n followed by k zero bytes (slice-by-8's eight tables). */
const TABLES = buildTables()

function buildTables(): Uint32Array {
  const t = new Uint32Array(8 * 256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1
    t[n] = c
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n]!
    for (let k = 1; k < 8; k++) {
      c = (c >>> 8) ^ t[c & 0xff]!
      t[k * 256 + n] = c
    }
  }
  return t
}

/** The raw CRC-32C register update (no inversions): the kernel's and e2fsprogs' crc32c_le. */
export function crc32cUpdate(crc: number, data: Uint8Array): number {
  const len = data.length
  if (native !== null && len >= NATIVE_MIN) return native(crc >>> 0, data, 0, len)
  return crc32cTable(crc, data)
}

/** The JavaScript slice-by-8 update (exported so tests can hold the native one to it). */
export function crc32cTable(crc: number, data: Uint8Array): number {
  const t = TABLES
  const len = data.length
  let c = crc >>> 0
  let i = 0
  // Slice-by-8: fold eight bytes per step through eight tables instead of one byte per table look-up.
  for (const end = len - (len & 7); i < end; i += 8) {
    const a = (c ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24))) >>> 0
    const b = data[i + 4]! | (data[i + 5]! << 8) | (data[i + 6]! << 16) | (data[i + 7]! << 24)
    c =
      t[1792 + (a & 0xff)]! ^
      t[1536 + ((a >>> 8) & 0xff)]! ^
      t[1280 + ((a >>> 16) & 0xff)]! ^
      t[1024 + (a >>> 24)]! ^
      t[768 + (b & 0xff)]! ^
      t[512 + ((b >>> 8) & 0xff)]! ^
      t[256 + ((b >>> 16) & 0xff)]! ^
      t[(b >>> 24) & 0xff]!
  }
  for (; i < len; i++) c = (c >>> 8) ^ t[(c ^ data[i]!) & 0xff]!
  return c >>> 0
}

/** Standard CRC-32C (inverted in and out); `seed` is a previous standard result to continue from. */
export function crc32c(data: Uint8Array, seed = 0): number {
  return ~crc32cUpdate(~seed >>> 0, data) >>> 0
}
