/* Tokens of the XDR/RPC language; comments and `%` pass-through lines are skipped. */

export interface Token {
  kind: 'ident' | 'number' | 'punct' | 'eof'
  text: string
  line: number
  col: number
  offset: number
}

export class XdrSyntaxError extends Error {
  constructor(file: string, line: number, col: number, message: string) {
    super(`${file}:${line}:${col}: ${message}`)
    this.name = 'XdrSyntaxError'
  }
}

export function tokenize(text: string, file: string): Token[] {
  const tokens: Token[] = []
  let i = 0
  let line = 1
  let lineStart = 0
  const n = text.length
  while (i < n) {
    const c = text[i] ?? ''
    if (c === '\n') {
      line++
      i++
      lineStart = i
      continue
    }
    if (c === ' ' || c === '\t' || c === '\r' || c === '\f') {
      i++
      continue
    }
    if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2)
      if (end < 0) throw new XdrSyntaxError(file, line, i - lineStart + 1, 'unterminated comment')
      for (let k = i; k < end; k++) {
        if (text[k] === '\n') {
          line++
          lineStart = k + 1
        }
      }
      i = end + 2
      continue
    }
    if ((c === '/' && text[i + 1] === '/') || (c === '%' && i === lineStart)) {
      while (i < n && text[i] !== '\n') i++
      continue
    }
    const start = i
    const col = i - lineStart + 1
    if (/[A-Za-z_]/.test(c)) {
      while (i < n && /[A-Za-z0-9_]/.test(text[i] ?? '')) i++
      tokens.push({ kind: 'ident', text: text.slice(start, i), line, col, offset: start })
      continue
    }
    if (/[0-9]/.test(c) || (c === '-' && /[0-9]/.test(text[i + 1] ?? ''))) {
      i++
      while (i < n && /[0-9A-Fa-fxX]/.test(text[i] ?? '')) i++
      tokens.push({ kind: 'number', text: text.slice(start, i), line, col, offset: start })
      continue
    }
    if ('{}[]<>();,=*:'.includes(c)) {
      i++
      tokens.push({ kind: 'punct', text: c, line, col, offset: start })
      continue
    }
    throw new XdrSyntaxError(file, line, col, `unexpected character '${c}'`)
  }
  tokens.push({ kind: 'eof', text: '', line, col: i - lineStart + 1, offset: n })
  return tokens
}
