import { ExportsError } from './errors.ts'

/** One whitespace-separated word of an export line, with where it starts. */
export interface Token {
  /** The text with quotes removed (backslash escapes are left for the path parser). */
  text: string
  line: number
  /** 1-based column of the first character. */
  column: number
  /** True when any part was inside double quotes (columns then drift; errors point at the start). */
  quoted: boolean
}

/** An export line after joining `\` continuations; never empty. */
export interface LogicalLine {
  line: number
  tokens: Token[]
}

/**
 * Splits an exports(5) file into logical lines of tokens.
 * - `#` at the start of a word (outside quotes) comments out the rest of the physical line.
 * - A `\` right before the end of a physical line continues the logical line; it acts as a space.
 * - Double quotes group characters, spaces included (`"/srv/my files"`); they may not span lines.
 */
export function lex(text: string, fileName: string): LogicalLine[] {
  const lines: LogicalLine[] = []
  let tokens: Token[] = []
  let logicalStart = 1
  // An object, not a `let`, so the helpers below can update it (TS narrows closed-over lets badly).
  const st: { cur: Token | null } = { cur: null }
  let line = 1
  let col = 1
  let inQuote = false
  let quoteLine = 0
  let quoteCol = 0

  const endToken = (): void => {
    if (st.cur !== null) tokens.push(st.cur)
    st.cur = null
  }
  const endLine = (): void => {
    endToken()
    if (tokens.length > 0) lines.push({ line: logicalStart, tokens })
    tokens = []
  }
  const startToken = (): Token => {
    st.cur ??= { text: '', line, column: col, quoted: false }
    return st.cur
  }

  for (let i = 0; i < text.length; i++) {
    const ch = text.charAt(i)
    if (ch === '\n') {
      if (inQuote) throw new ExportsError(fileName, quoteLine, quoteCol, 'unterminated quote')
      endLine()
      line++
      col = 1
      logicalStart = line
      continue
    }
    if (inQuote) {
      if (ch === '"') inQuote = false
      else startToken().text += ch
    } else if (ch === '"') {
      inQuote = true
      quoteLine = line
      quoteCol = col
      startToken().quoted = true
    } else if (ch === '\\' && (text.charAt(i + 1) === '\n' || text.startsWith('\r\n', i + 1))) {
      // Continuation: the next physical line belongs to this logical line.
      endToken()
      i += text.charAt(i + 1) === '\n' ? 1 : 2
      line++
      col = 1
      continue
    } else if (ch === ' ' || ch === '\t' || ch === '\r' || ch === '\f' || ch === '\v') {
      endToken()
    } else if (ch === '#' && st.cur === null) {
      const nl = text.indexOf('\n', i)
      const stop = nl === -1 ? text.length : nl
      col += stop - i
      i = stop - 1
      continue
    } else {
      startToken().text += ch
    }
    col++
  }
  if (inQuote) throw new ExportsError(fileName, quoteLine, quoteCol, 'unterminated quote')
  endLine()
  return lines
}
