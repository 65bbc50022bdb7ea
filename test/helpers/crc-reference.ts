/**
 * Reflected CRC-32 bit by bit, straight from the polynomial: a reference independent of the
 * table-driven code under test. One algorithm, two polynomials in this project: CRC-32 (IEEE, as
 * zlib; volume member superblocks) and CRC-32C (Castagnoli; ext4 metadata).
 */
export const CRC32_IEEE = 0xedb88320
export const CRC32C_CASTAGNOLI = 0x82f63b78

/** The raw register update from `crc` over `data`, with no inversion before or after (ext4's crc32c_le form). */
export function crcReference(poly: number, crc: number, data: Uint8Array): number {
  let c = crc >>> 0
  for (const byte of data) {
    c ^= byte
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1
  }
  return c >>> 0
}

/** The standard CRC-32 (IEEE) of `data`: start at ~0, invert at the end, as zlib's crc32. */
export function crc32Reference(data: Uint8Array): number {
  return (crcReference(CRC32_IEEE, 0xffffffff, data) ^ 0xffffffff) >>> 0
}
