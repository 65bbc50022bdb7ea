/*
 * Exclude patterns: shell globs ('*' and '?' stay within one name, '**' crosses '/', '[...]' a class),
 * matched against an object's relative path and against its base name, as tar's --exclude does.
 */

const MAX_PATTERN = 4096

function toRegExp(glob: string): RegExp {
  let re = ''
  for (let i = 0; i < glob.length; i++) {
    const c = glob.charAt(i)
    if (c === '*') {
      if (glob[i + 1] === '*') {
        re += '.*'
        i++
      } else re += '[^/]*'
    } else if (c === '?') re += '[^/]'
    else if (c === '[') {
      const end = glob.indexOf(']', i + 2)
      if (end === -1) re += '\\['
      else {
        const body = glob.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\')
        re += `[${body}]`
        i = end
      }
    } else re += c.replace(/[.+^${}()|\\/]/g, '\\$&')
  }
  return new RegExp(`^${re}$`, 's')
}

export class Excluder {
  readonly #res: RegExp[]

  constructor(patterns: readonly string[] = []) {
    this.#res = patterns.filter((p) => p.length > 0 && p.length <= MAX_PATTERN).map((p) => toRegExp(p.replace(/^\/+|\/+$/g, '')))
  }

  excluded(path: string): boolean {
    if (this.#res.length === 0) return false
    const base = path.slice(path.lastIndexOf('/') + 1)
    return this.#res.some((r) => r.test(path) || r.test(base))
  }
}
