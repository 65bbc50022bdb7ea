import { formatIp, maskIp, netmaskPrefix, parseIp } from './address.ts'
import type { ClientMatch } from './schema.ts'

/** A host name, possibly with the exports(5) wildcards `*`, `?` and `[...]`. */
const HOST_CHARS = /^[A-Za-z0-9._\-*?[\]!^]+$/
const WILDCARD_CHARS = /[*?[]/

/**
 * Parses a client as written in exports(5) into how it matches a peer, or
 * returns an error reason. Forms: `*`; an IPv4/IPv6 address; a network
 * (`10.0.0.0/8`, `10.0.0.0/255.0.0.0`, `fd00::/8`); a wildcard host name
 * (`*.example.com`, `host?.lab`, `node[1-3]`); a plain host name.
 * `@netgroup` is not supported (it needs NIS/LDAP).
 */
export function parseClientMatch(name: string): ClientMatch | string {
  if (name === '*') return { kind: 'any' }
  if (name.startsWith('@')) return `netgroups are not supported ("${name}")`
  const slash = name.indexOf('/')
  if (slash !== -1) return parseNetwork(name, slash)
  const ip = parseIp(name)
  if (ip !== null) return { kind: 'address', address: formatIp(ip) }
  if (!HOST_CHARS.test(name)) return `invalid client "${name}"`
  if (WILDCARD_CHARS.test(name)) {
    if (!validBrackets(name)) return `unbalanced [ in client "${name}"`
    return { kind: 'wildcard', pattern: name.toLowerCase() }
  }
  return { kind: 'hostname', name: name.toLowerCase().replace(/\.$/, '') }
}

function parseNetwork(name: string, slash: number): ClientMatch | string {
  const ip = parseIp(name.slice(0, slash))
  if (ip === null) return `invalid network address in "${name}"`
  const bits = ip.length * 8
  const suffix = name.slice(slash + 1)
  let prefix: number | null
  if (/^\d{1,3}$/.test(suffix)) {
    prefix = Number(suffix)
    if (prefix > bits) return `prefix length ${suffix} is too long in "${name}"`
  } else {
    const mask = parseIp(suffix)
    if (mask?.length !== ip.length) return `invalid netmask in "${name}"`
    prefix = netmaskPrefix(mask)
    if (prefix === null) return `netmask is not contiguous in "${name}"`
  }
  // Host bits set in the address (10.0.0.1/8) are ignored, as Linux does.
  return { kind: 'network', address: formatIp(maskIp(ip, prefix)), prefix }
}

function validBrackets(name: string): boolean {
  let open = false
  for (const ch of name) {
    if (ch === '[') {
      if (open) return false
      open = true
    } else if (ch === ']') {
      open = false
    }
  }
  return !open
}

/**
 * fnmatch-style pattern to a RegExp: `*` also matches dots (exports(5): so
 * `*.cs.foo.edu` covers subdomains too), `?` one character, `[a-c]` and
 * `[!a-c]` classes. Case-insensitive (DNS names are).
 */
export function wildcardToRegExp(pattern: string): RegExp {
  let re = '^'
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern.charAt(i)
    if (ch === '*') re += '.*'
    else if (ch === '?') re += '.'
    else if (ch === '[') {
      const close = pattern.indexOf(']', i + 1)
      let body = pattern.slice(i + 1, close)
      if (body.startsWith('!') || body.startsWith('^')) body = '^' + body.slice(1)
      re += '[' + body.replace(/[\\\]]/g, '\\$&') + ']'
      i = close
    } else re += /[A-Za-z0-9_]/.test(ch) ? ch : '\\' + ch
  }
  return new RegExp(re + '$', 'i')
}
