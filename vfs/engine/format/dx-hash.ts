/*
 * The htree name hash (kernel fs/ext4/hash.c, ext4fs_dirhash; e2fsprogs
 * lib/ext2fs/dirhash.c): which leaf of an indexed directory a name lives in,
 * and the order knfsd's READDIR cookies follow. Three algorithms (the legacy
 * hack, half MD4, TEA), each in a signed-char and an unsigned-char flavour,
 * because the bytes >= 0x80 of a name were once fed to them as C `char`,
 * whose sign depends on the CPU that made the file system (s_flags records
 * which one). Every sum is 32-bit unsigned; `>>> 0` and Math.imul keep it so.
 */
import { FormatError } from './errors.ts'
import { DX_HASH } from './dirent.ts'

/** The kernel's "end of directory" major hash in the 32-bit cookie space; no name may hash to it. */
export const HTREE_EOF_32BIT = 0x7fffffff
/** s_flags bits: which char signedness the hash of this file system uses. */
export const EXT2_FLAGS_SIGNED_HASH = 0x1
export const EXT2_FLAGS_UNSIGNED_HASH = 0x2

export interface DxHash {
  /** Bit 0 always clear: the tree keeps it for the collision-continuation flag. */
  major: number
  minor: number
}

/** The default seed (MD4's initial state) used when s_hash_seed is all zero. */
const DEFAULT_SEED = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476]
const TEA_DELTA = 0x9e3779b9
const K2 = 0o13240474631
const K3 = 0o15666365641

function rol(x: number, s: number): number {
  return ((x << s) | (x >>> (32 - s))) >>> 0
}

/** s_hash_seed as four little-endian words; all zero means "use the default". */
export function seedWords(seed: Uint8Array | undefined): number[] {
  // A copy: the caller may use it as running state.
  return [...seedOf(seed)]
}

/** The seed's four words (the default when absent or all zero), decoded once per seed buffer. */
function seedOf(seed: Uint8Array | undefined): readonly number[] {
  if (seed === undefined || seed.length < 16) return DEFAULT_SEED
  let w = SEEDS.get(seed)
  if (w === undefined) {
    const dv = new DataView(seed.buffer, seed.byteOffset, 16)
    w = [0, 1, 2, 3].map((i) => dv.getUint32(i * 4, true))
    if (w.every((x) => x === 0)) w = DEFAULT_SEED
    SEEDS.set(seed, w)
  }
  return w
}

const SEEDS = new WeakMap<Uint8Array, readonly number[]>()

/*
 * The running state and one chunk's words, reused by every hash: dxHash is synchronous, and a
 * directory listing hashes every name of each leaf it parses, a create or lookup one each; arrays
 * made per name (a copy of the seed, the words of each chunk) were most of a hash's cost.
 */
const STATE = new Uint32Array(4)
const WORDS = new Uint32Array(8)

function legacy(name: Uint8Array, signed: boolean): number {
  let hash0 = 0x12a3fe2d
  let hash1 = 0x37abe8f9
  for (const byte of name) {
    const c = signed && byte >= 0x80 ? byte - 256 : byte
    let hash = (hash1 + ((hash0 ^ Math.imul(c, 7152373)) >>> 0)) >>> 0
    if ((hash & 0x80000000) !== 0) hash = (hash - 0x7fffffff) >>> 0
    hash1 = hash0
    hash0 = hash
  }
  return (hash0 << 1) >>> 0
}

/**
 * str2hashbuf: pack up to num*4 bytes of msg big-end-first into num words,
 * padding with a word made of the (whole remaining) length.
 */
/** str2hashbuf: the `num` words of msg[from, from + len) (padded with the length), into WORDS[0 .. num). */
function str2hashbuf(msg: Uint8Array, from: number, len: number, num: number, signed: boolean): void {
  let pad = (len | (len << 8)) >>> 0
  pad = (pad | (pad << 16)) >>> 0
  let k = 0
  let val = pad
  const n = Math.min(len, num * 4)
  for (let i = 0; i < n; i++) {
    const byte = msg[from + i] ?? 0
    const c = signed && byte >= 0x80 ? byte - 256 : byte
    val = (c + ((val << 8) >>> 0)) >>> 0
    if (i % 4 === 3) {
      WORDS[k++] = val
      val = pad
    }
  }
  if (k < num) WORDS[k++] = val
  while (k < num) WORDS[k++] = pad
}

const F = (x: number, y: number, z: number): number => z ^ (x & (y ^ z))
const G = (x: number, y: number, z: number): number => ((x & y) + ((x ^ y) & z)) | 0
const H = (x: number, y: number, z: number): number => x ^ y ^ z

/** The kernel's half_md4_transform: MD4's three rounds over 8 words, written out as there. */
function halfMd4Transform(buf: Uint32Array, x: Uint32Array): void {
  const x0 = x[0] ?? 0
  const x1 = x[1] ?? 0
  const x2 = x[2] ?? 0
  const x3 = x[3] ?? 0
  const x4 = x[4] ?? 0
  const x5 = x[5] ?? 0
  const x6 = x[6] ?? 0
  const x7 = x[7] ?? 0
  let a = buf[0] ?? 0
  let b = buf[1] ?? 0
  let c = buf[2] ?? 0
  let d = buf[3] ?? 0
  a = rol((a + F(b, c, d) + x0) | 0, 3)
  d = rol((d + F(a, b, c) + x1) | 0, 7)
  c = rol((c + F(d, a, b) + x2) | 0, 11)
  b = rol((b + F(c, d, a) + x3) | 0, 19)
  a = rol((a + F(b, c, d) + x4) | 0, 3)
  d = rol((d + F(a, b, c) + x5) | 0, 7)
  c = rol((c + F(d, a, b) + x6) | 0, 11)
  b = rol((b + F(c, d, a) + x7) | 0, 19)

  a = rol((a + G(b, c, d) + x1 + K2) | 0, 3)
  d = rol((d + G(a, b, c) + x3 + K2) | 0, 5)
  c = rol((c + G(d, a, b) + x5 + K2) | 0, 9)
  b = rol((b + G(c, d, a) + x7 + K2) | 0, 13)
  a = rol((a + G(b, c, d) + x0 + K2) | 0, 3)
  d = rol((d + G(a, b, c) + x2 + K2) | 0, 5)
  c = rol((c + G(d, a, b) + x4 + K2) | 0, 9)
  b = rol((b + G(c, d, a) + x6 + K2) | 0, 13)

  a = rol((a + H(b, c, d) + x3 + K3) | 0, 3)
  d = rol((d + H(a, b, c) + x7 + K3) | 0, 9)
  c = rol((c + H(d, a, b) + x2 + K3) | 0, 11)
  b = rol((b + H(c, d, a) + x6 + K3) | 0, 15)
  a = rol((a + H(b, c, d) + x1 + K3) | 0, 3)
  d = rol((d + H(a, b, c) + x5 + K3) | 0, 9)
  c = rol((c + H(d, a, b) + x0 + K3) | 0, 11)
  b = rol((b + H(c, d, a) + x4 + K3) | 0, 15)

  buf[0] = ((buf[0] ?? 0) + a) >>> 0
  buf[1] = ((buf[1] ?? 0) + b) >>> 0
  buf[2] = ((buf[2] ?? 0) + c) >>> 0
  buf[3] = ((buf[3] ?? 0) + d) >>> 0
}

function teaTransform(buf: Uint32Array, inp: Uint32Array): void {
  let sum = 0
  let b0 = buf[0] ?? 0
  let b1 = buf[1] ?? 0
  const a = inp[0] ?? 0
  const b = inp[1] ?? 0
  const c = inp[2] ?? 0
  const d = inp[3] ?? 0
  for (let n = 0; n < 16; n++) {
    sum = (sum + TEA_DELTA) >>> 0
    b0 = (b0 + ((((b1 << 4) + a) >>> 0) ^ ((b1 + sum) >>> 0) ^ (((b1 >>> 5) + b) >>> 0))) >>> 0
    b1 = (b1 + ((((b0 << 4) + c) >>> 0) ^ ((b0 + sum) >>> 0) ^ (((b0 >>> 5) + d) >>> 0))) >>> 0
  }
  buf[0] = ((buf[0] ?? 0) + b0) >>> 0
  buf[1] = ((buf[1] ?? 0) + b1) >>> 0
}

/**
 * ext4fs_dirhash: the { major, minor } hash of name under hash version
 * `version` (DX_HASH; 3..5 are the unsigned flavours) and s_hash_seed.
 * SipHash (casefolded directories) is refused: we do not implement casefold.
 */
export function dxHash(name: Uint8Array, version: number, seed?: Uint8Array): DxHash {
  const w = seedOf(seed)
  const buf = STATE
  buf[0] = w[0] ?? 0
  buf[1] = w[1] ?? 0
  buf[2] = w[2] ?? 0
  buf[3] = w[3] ?? 0
  let major: number
  let minor = 0
  switch (version) {
    case DX_HASH.LEGACY:
    case DX_HASH.LEGACY_UNSIGNED:
      major = legacy(name, version === DX_HASH.LEGACY)
      break
    case DX_HASH.HALF_MD4:
    case DX_HASH.HALF_MD4_UNSIGNED: {
      const signed = version === DX_HASH.HALF_MD4
      for (let at = 0, len = name.length; len > 0; at += 32, len -= 32) {
        str2hashbuf(name, at, len, 8, signed)
        halfMd4Transform(buf, WORDS)
      }
      major = buf[1]
      minor = buf[2]
      break
    }
    case DX_HASH.TEA:
    case DX_HASH.TEA_UNSIGNED: {
      const signed = version === DX_HASH.TEA
      for (let at = 0, len = name.length; len > 0; at += 16, len -= 16) {
        str2hashbuf(name, at, len, 4, signed)
        teaTransform(buf, WORDS)
      }
      major = buf[0]
      minor = buf[1]
      break
    }
    case DX_HASH.SIPHASH:
      throw new FormatError('EXT4_UNSUPPORTED_FEATURE', 'htree hash siphash (casefolded directory; unsupported feature: casefold)')
    default:
      throw new FormatError('EXT4_CORRUPT', `unknown htree hash version ${version}`)
  }
  major = (major & ~1) >>> 0
  if (major === (HTREE_EOF_32BIT << 1) >>> 0) major = ((HTREE_EOF_32BIT - 1) << 1) >>> 0
  return { major, minor }
}

/**
 * The version to hash with for a directory whose dx_root says `rootVersion`:
 * the three classic ones become their unsigned flavour when s_flags says so
 * (the kernel's s_hash_unsigned).
 */
export function effectiveHashVersion(rootVersion: number, sbFlags: number): number {
  if (rootVersion <= DX_HASH.TEA && (sbFlags & EXT2_FLAGS_UNSIGNED_HASH) !== 0) return rootVersion + 3
  return rootVersion
}
