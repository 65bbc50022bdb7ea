import { hash } from 'node:crypto'

/*
 * The MAC of a file handle (filehandle.ts): HMAC-SHA256 (RFC 2104) of the
 * handle's 20-byte body, first 12 bytes. Byte for byte what
 * createHmac('sha256', key) gives, so handles minted by any earlier server
 * or another cluster member still verify; computed here with SHA-256's
 * compression function (FIPS 180-4 §6.2.2) in JavaScript, from the two
 * states the key's padded blocks leave (K ^ ipad, K ^ opad: fixed per key,
 * so computed once). A 20-byte body then costs two compressions, one for
 * each hash, with no allocation and no call into OpenSSL: createHmac (a
 * stream object and an HMAC context per call) cost ~15 µs of every CREATE in
 * a busy server, two one-shot crypto.hash calls still ~10, this ~1
 * (bench/README.md, session 38).
 */

const BLOCK = 64
const BODY = 20
export const HANDLE_MAC_SIZE = 12

/** FIPS 180-4 §4.2.2: the first 32 bits of the fractional parts of the cube roots of the first 64 primes. */
const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
])

/** FIPS 180-4 §5.3.3: the initial hash value. */
const IV = new Int32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19])

/** The message schedule; its first 16 words are the block, filled by the caller. One for the process (synchronous use only). */
const W = new Int32Array(64)

/** One SHA-256 compression (FIPS 180-4 §6.2.2) of the block in W[0..15], from `state` into `out`. */
function compress(state: Int32Array, out: Int32Array): void {
  for (let i = 16; i < 64; i++) {
    const x = W[i - 15] ?? 0
    const y = W[i - 2] ?? 0
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10)
    W[i] = ((W[i - 16] ?? 0) + s0 + (W[i - 7] ?? 0) + s1) | 0
  }
  let a = state[0] ?? 0
  let b = state[1] ?? 0
  let c = state[2] ?? 0
  let d = state[3] ?? 0
  let e = state[4] ?? 0
  let f = state[5] ?? 0
  let g = state[6] ?? 0
  let h = state[7] ?? 0
  for (let i = 0; i < 64; i++) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))
    const ch = (e & f) ^ (~e & g)
    const t1 = (h + s1 + ch + (K[i] ?? 0) + (W[i] ?? 0)) | 0
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))
    const maj = (a & b) ^ (a & c) ^ (b & c)
    const t2 = (s0 + maj) | 0
    h = g
    g = f
    f = e
    e = (d + t1) | 0
    d = c
    c = b
    b = a
    a = (t1 + t2) | 0
  }
  out[0] = ((state[0] ?? 0) + a) | 0
  out[1] = ((state[1] ?? 0) + b) | 0
  out[2] = ((state[2] ?? 0) + c) | 0
  out[3] = ((state[3] ?? 0) + d) | 0
  out[4] = ((state[4] ?? 0) + e) | 0
  out[5] = ((state[5] ?? 0) + f) | 0
  out[6] = ((state[6] ?? 0) + g) | 0
  out[7] = ((state[7] ?? 0) + h) | 0
}

/** The state after one padded key block. */
function stateAfter(block: Buffer): Int32Array {
  for (let i = 0; i < 16; i++) W[i] = block.readInt32BE(i * 4)
  const s = new Int32Array(8)
  compress(IV, s)
  return s
}

export class HandleMac {
  readonly #inner: Int32Array
  readonly #outer: Int32Array
  readonly #t = new Int32Array(8)

  constructor(key: Buffer) {
    // RFC 2104 §2: a key longer than the block is hashed first; a shorter one is zero-padded.
    const k = key.length > BLOCK ? hash('sha256', key, 'buffer') : key
    const ipad = Buffer.alloc(BLOCK)
    const opad = Buffer.alloc(BLOCK)
    for (let i = 0; i < BLOCK; i++) {
      const b = k[i] ?? 0
      ipad[i] = b ^ 0x36
      opad[i] = b ^ 0x5c
    }
    this.#inner = stateAfter(ipad)
    this.#outer = stateAfter(opad)
  }

  /** Writes the MAC of `fh`'s bytes 0..19 (HANDLE_MAC_SIZE bytes) into `out` at `at`. */
  write(fh: Buffer, out: Buffer, at: number): void {
    const t = this.#t
    // Inner hash: its second block is the body, 0x80, zeros, and the bit length of key block + body.
    for (let i = 0; i < BODY / 4; i++) W[i] = fh.readInt32BE(i * 4)
    W[5] = 0x8000_0000 | 0
    W.fill(0, 6, 15)
    W[15] = (BLOCK + BODY) * 8
    compress(this.#inner, t)
    // Outer hash: its second block is the inner digest, padded the same way.
    for (let i = 0; i < 8; i++) W[i] = t[i] ?? 0
    W[8] = 0x8000_0000 | 0
    W.fill(0, 9, 15)
    W[15] = (BLOCK + 32) * 8
    compress(this.#outer, t)
    for (let i = 0; i < HANDLE_MAC_SIZE / 4; i++) out.writeInt32BE(t[i] ?? 0, at + i * 4)
  }
}
