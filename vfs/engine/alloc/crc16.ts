/*
 * The crc16 of uninit_bg (gdt_csum) group descriptors: CRC-16/ARC (polynomial 0x8005, reflected
 * as 0xa001), started from ~0 and not inverted at the end, as e2fsprogs lib/ext2fs/crc16.c. Images
 * with metadata_csum use crc32c instead; this is for the older checksummed format.
 */

const TABLE = new Uint16Array(256)
for (let n = 0; n < 256; n++) {
  let c = n
  for (let k = 0; k < 8; k++) c = (c & 1) !== 0 ? (c >>> 1) ^ 0xa001 : c >>> 1
  TABLE[n] = c
}

export function crc16Update(crc: number, data: Uint8Array): number {
  let c = crc & 0xffff
  for (const b of data) c = ((c >>> 8) ^ (TABLE[(c ^ b) & 0xff] ?? 0)) & 0xffff
  return c
}
