/*
 * One 512-byte tar header block: the ustar layout of POSIX.1-2001 (pax), read and written.
 * Fields that do not fit (long names, sizes ≥ 8 GiB, large ids, nanosecond times) travel in a pax
 * extended header ('x') before this block; this file only packs what fits and says what does not.
 */

export const BLOCK = 512

/** ustar type flags (POSIX.1-2001 "ustar Interchange Format", typeflag). */
export const TYPE = {
  file: 0x30, // '0'
  oldFile: 0x00, // NUL: pre-POSIX regular file
  hardLink: 0x31, // '1'
  symlink: 0x32, // '2'
  char: 0x33, // '3'
  block: 0x34, // '4'
  dir: 0x35, // '5'
  fifo: 0x36, // '6'
  contiguous: 0x37, // '7': a regular file to every reader we know
  paxLocal: 0x78, // 'x'
  paxGlobal: 0x67, // 'g'
  gnuLongName: 0x4c, // 'L'
  gnuLongLink: 0x4b, // 'K'
} as const

export interface HeaderFields {
  name: Buffer
  mode: number
  uid: number
  gid: number
  size: bigint
  mtime: number
  type: number
  linkname: Buffer
  uname: string
  gname: string
  devmajor: number
  devminor: number
  prefix: Buffer
}

const OCTAL_MAX_7 = 0o7777777
const OCTAL_MAX_11 = 0o77777777777n

/** Largest values the plain octal fields hold; anything above goes to a pax record. */
export const USTAR_LIMIT = { id: OCTAL_MAX_7, size: OCTAL_MAX_11, mtime: Number(OCTAL_MAX_11) }

function putOctal(buf: Buffer, off: number, len: number, value: number | bigint): void {
  const s = value.toString(8).padStart(len - 1, '0')
  buf.write(s, off, len - 1, 'ascii')
  buf[off + len - 1] = 0
}

function putString(buf: Buffer, off: number, len: number, value: Buffer | string): void {
  const b = typeof value === 'string' ? Buffer.from(value, 'utf8') : value
  b.copy(buf, off, 0, Math.min(len, b.length))
}

/** Packs `h` into a new block with its checksum; every field must already fit. */
export function encodeHeader(h: HeaderFields): Buffer {
  const b = Buffer.alloc(BLOCK)
  putString(b, 0, 100, h.name)
  putOctal(b, 100, 8, h.mode & 0o7777)
  putOctal(b, 108, 8, Math.min(h.uid, OCTAL_MAX_7))
  putOctal(b, 116, 8, Math.min(h.gid, OCTAL_MAX_7))
  putOctal(b, 124, 12, h.size > OCTAL_MAX_11 ? OCTAL_MAX_11 : h.size)
  putOctal(b, 136, 12, Math.max(0, Math.min(h.mtime, USTAR_LIMIT.mtime)))
  b[156] = h.type
  putString(b, 157, 100, h.linkname)
  b.write('ustar\u000000', 257, 8, 'ascii')
  putString(b, 265, 32, h.uname)
  putString(b, 297, 32, h.gname)
  putOctal(b, 329, 8, Math.min(h.devmajor, OCTAL_MAX_7))
  putOctal(b, 337, 8, Math.min(h.devminor, OCTAL_MAX_7))
  putString(b, 345, 155, h.prefix)
  b.fill(0x20, 148, 156)
  putOctal(b, 148, 7, checksum(b))
  b[155] = 0x20
  return b
}

/** The unsigned sum of the block with the checksum field read as spaces (ustar "chksum"). */
export function checksum(block: Buffer): number {
  let sum = 0
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0)
  return sum
}

/** Historic writers summed signed chars; POSIX readers accept either. */
function signedChecksum(block: Buffer): number {
  let sum = 0
  for (let i = 0; i < BLOCK; i++) {
    const v = i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0)
    sum += v > 127 ? v - 256 : v
  }
  return sum
}

export function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false
  return true
}

/** A field as text up to its first NUL. */
function cString(block: Buffer, off: number, len: number): Buffer {
  const end = block.indexOf(0, off)
  return block.subarray(off, end === -1 || end > off + len ? off + len : end)
}

/**
 * A numeric field: octal text (space/NUL padded), or GNU's base-256 form (high bit of the first
 * byte set) that GNU tar writes for values too large for octal. null when the field is not a number.
 */
export function parseNumeric(block: Buffer, off: number, len: number): bigint | null {
  const first = block[off] ?? 0
  if ((first & 0x80) !== 0) {
    if ((first & 0x40) !== 0) return null // negative base-256: no size, id or time of ours is negative
    let v = BigInt(first & 0x3f)
    for (let i = 1; i < len; i++) v = (v << 8n) | BigInt(block[off + i] ?? 0)
    return v
  }
  const text = block.toString('ascii', off, off + len).replace(/[\0 ]+$/, '').replace(/^ +/, '')
  if (text === '') return 0n
  if (!/^[0-7]+$/.test(text)) return null
  return BigInt('0o' + text)
}

export type HeaderParse = { ok: true; fields: HeaderFields } | { ok: false; reason: string }

/** Reads one header block; the reason names the first bad field. */
export function decodeHeader(block: Buffer): HeaderParse {
  const stored = parseNumeric(block, 148, 8)
  if (stored === null) return { ok: false, reason: 'checksum field is not octal' }
  const sum = Number(stored)
  if (sum !== checksum(block) && sum !== signedChecksum(block)) {
    return { ok: false, reason: `header checksum ${sum} does not match the block (${checksum(block)})` }
  }
  const nums = { mode: 0n, uid: 0n, gid: 0n, size: 0n, mtime: 0n }
  for (const [k, off, len] of [
    ['mode', 100, 8],
    ['uid', 108, 8],
    ['gid', 116, 8],
    ['size', 124, 12],
    ['mtime', 136, 12],
  ] as const) {
    const v = parseNumeric(block, off, len)
    if (v === null) return { ok: false, reason: `header field ${k} is not a number` }
    nums[k] = v
  }
  const ustar = block.toString('ascii', 257, 262) === 'ustar'
  const dev = (off: number): number => (ustar ? Number(parseNumeric(block, off, 8) ?? 0n) : 0)
  return {
    ok: true,
    fields: {
      name: Buffer.from(cString(block, 0, 100)),
      mode: Number(nums.mode & 0o7777n),
      uid: Number(nums.uid),
      gid: Number(nums.gid),
      size: nums.size,
      mtime: Number(nums.mtime),
      type: block[156] ?? 0,
      linkname: Buffer.from(cString(block, 157, 100)),
      uname: ustar ? cString(block, 265, 32).toString('utf8') : '',
      gname: ustar ? cString(block, 297, 32).toString('utf8') : '',
      devmajor: dev(329),
      devminor: dev(337),
      prefix: ustar ? Buffer.from(cString(block, 345, 155)) : Buffer.alloc(0),
    },
  }
}

/**
 * Splits a path into ustar prefix + name when it fits (name ≤ 100 bytes, prefix ≤ 155, split at a
 * '/'); null when it does not and a pax 'path' record must carry it.
 */
export function splitUstarPath(p: Buffer): { prefix: Buffer; name: Buffer } | null {
  if (p.length <= 100) return { prefix: Buffer.alloc(0), name: p }
  if (p.length > 256) return null
  for (let i = Math.max(0, p.length - 101); i < Math.min(p.length, 156); i++) {
    if (p[i] === 0x2f && i > 0 && p.length - i - 1 <= 100 && p.length - i - 1 > 0) {
      return { prefix: p.subarray(0, i), name: p.subarray(i + 1) }
    }
  }
  return null
}

/** Pads a length to whole blocks. */
export function padded(n: bigint): bigint {
  return (n + 511n) & ~511n
}
