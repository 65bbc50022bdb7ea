import { isIPv4, isIPv6 } from 'node:net'

/*
 * IP addresses as bytes, for exact and prefix matching. An IPv4-mapped IPv6
 * address (`::ffff:127.0.0.1`, what a dual-stack socket reports for an IPv4
 * peer) is turned into its 4-byte IPv4 form so IPv4 client specs match it.
 */

/** 4 bytes for IPv4 (and IPv4-mapped IPv6), 16 for IPv6; null when `text` is not an address. */
export function parseIp(text: string): Uint8Array | null {
  // A scope id (`fe80::1%eth0`) names an interface, not part of the address.
  const pct = text.indexOf('%')
  const addr = pct === -1 ? text : text.slice(0, pct)
  if (isIPv4(addr)) return parseV4(addr)
  if (!isIPv6(addr)) return null
  const bytes = parseV6(addr)
  if (isV4Mapped(bytes)) return bytes.slice(12)
  return bytes
}

function parseV4(addr: string): Uint8Array {
  return Uint8Array.from(addr.split('.').map(Number))
}

/** `addr` has already been validated by isIPv6. */
function parseV6(addr: string): Uint8Array {
  let head = addr
  let tail = ''
  const dbl = addr.indexOf('::')
  if (dbl !== -1) {
    head = addr.slice(0, dbl)
    tail = addr.slice(dbl + 2)
  }
  const words = (s: string): number[] => {
    if (s === '') return []
    const out: number[] = []
    for (const part of s.split(':')) {
      if (part.includes('.')) {
        const v4 = parseV4(part)
        out.push(((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0))
      } else {
        out.push(parseInt(part, 16))
      }
    }
    return out
  }
  const h = words(head)
  const t = words(tail)
  const all = [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t]
  const bytes = new Uint8Array(16)
  all.forEach((w, i) => {
    bytes[2 * i] = w >> 8
    bytes[2 * i + 1] = w & 0xff
  })
  return bytes
}

function isV4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false
  return b[10] === 0xff && b[11] === 0xff
}

/** Canonical text: dotted quad, or eight lower-case hex words (no `::` compression). */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.')
  const words: string[] = []
  for (let i = 0; i < 16; i += 2) words.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16))
  return words.join(':')
}

/** True when the first `prefix` bits of `a` and `b` agree (and both are the same family). */
export function prefixMatch(a: Uint8Array, b: Uint8Array, prefix: number): boolean {
  if (a.length !== b.length) return false
  const full = prefix >> 3
  for (let i = 0; i < full; i++) if (a[i] !== b[i]) return false
  const rest = prefix & 7
  if (rest === 0) return true
  const mask = (0xff << (8 - rest)) & 0xff
  return ((a[full] ?? 0) & mask) === ((b[full] ?? 0) & mask)
}

/** Zeroes the bits after `prefix`. */
export function maskIp(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = Uint8Array.from(bytes)
  for (let bit = prefix; bit < out.length * 8; bit++) {
    const i = bit >> 3
    out[i] = (out[i] ?? 0) & ~(0x80 >> (bit & 7))
  }
  return out
}

/** The prefix length of a contiguous netmask (`255.255.0.0` -> 16), or null if it has holes. */
export function netmaskPrefix(mask: Uint8Array): number | null {
  let prefix = 0
  let seenZero = false
  for (const byte of mask) {
    for (let bit = 7; bit >= 0; bit--) {
      if ((byte >> bit) & 1) {
        if (seenZero) return null
        prefix++
      } else {
        seenZero = true
      }
    }
  }
  return prefix
}
