/*
 * tsnfs shell URL: an interactive session on one mount (readline). Reads
 * commands from a pipe as well (no prompt unless stdin and stdout are
 * terminals), so it can be scripted. A failing command prints
 * `<cmd>: <path>: <message>` on stderr and the shell goes on; the exit
 * status is 1 if any command failed.
 */
import { createInterface } from 'node:readline'
import { parseCommand, PathError, messageOf, runCommand, UsageError } from './common.ts'
import { HELP, SHELL_COMMANDS } from './shell-commands.ts'
import type { ShellState } from './shell-commands.ts'
import { nfsSide } from './sides.ts'

export const SHELL_USAGE = `usage: tsnfs shell URL
  an interactive shell on the export (type help); reads commands from stdin when it is a pipe
${HELP}`

/** Words of a command line: blanks separate, '…' and "…" quote, \\ escapes. */
export function splitWords(line: string): string[] {
  const words: string[] = []
  let cur = ''
  let inWord = false
  let quote: '"' | "'" | null = null
  for (let i = 0; i < line.length; i++) {
    const c = line.charAt(i)
    if (quote !== null) {
      if (c === quote) quote = null
      else if (c === '\\' && quote === '"' && i + 1 < line.length) cur += line.charAt(++i)
      else cur += c
    } else if (c === "'" || c === '"') {
      quote = c
      inWord = true
    } else if (c === '\\' && i + 1 < line.length) {
      cur += line.charAt(++i)
      inWord = true
    } else if (c === ' ' || c === '\t') {
      if (inWord) words.push(cur)
      cur = ''
      inWord = false
    } else {
      cur += c
      inWord = true
    }
  }
  if (quote !== null) throw new UsageError('unterminated quote')
  if (inWord) words.push(cur)
  return words
}

/** Run one line; false when the shell should stop. Failures are printed and rethrown as a count. */
async function execute(sh: ShellState, line: string): Promise<'ok' | 'failed' | 'exit'> {
  let words: string[]
  try {
    words = splitWords(line.trim())
  } catch (err) {
    process.stderr.write(`${messageOf(err)}\n`)
    return 'failed'
  }
  const [name, ...args] = words
  if (name === undefined || name.startsWith('#')) return 'ok'
  if (name === 'exit' || name === 'quit') return 'exit'
  const command = SHELL_COMMANDS[name]
  if (command === undefined) {
    process.stderr.write(`${name}: unknown command (try help)\n`)
    return 'failed'
  }
  try {
    await command(sh, args)
    return 'ok'
  } catch (err) {
    const where = err instanceof PathError ? `${err.path}: ` : ''
    process.stderr.write(`${name}: ${where}${messageOf(err)}\n`)
    return 'failed'
  }
}

export function shell(argv: string[]): Promise<number> {
  return runCommand('shell', SHELL_USAGE, argv, async mounts => {
    const { positionals } = parseCommand(argv, {})
    const [url, ...extra] = positionals
    if (url === undefined || extra.length > 0) throw new UsageError('need exactly one URL')
    const t = await mounts.targetOf(url)
    const sh: ShellState = { client: t.client, side: nfsSide(t.client, url), home: t.path, cwd: t.path, out: process.stdout }
    const tty = process.stdin.isTTY && process.stdout.isTTY
    const rl = createInterface({ input: process.stdin, ...(tty ? { output: process.stdout, terminal: true } : { terminal: false }) })
    const prompt = (): void => {
      if (!tty) return
      const exp = t.client.exportPath === '/' ? '' : t.client.exportPath
      rl.setPrompt(`${t.client.host}:${exp === '' || sh.cwd !== '/' ? `${exp}${sh.cwd}` : exp}> `)
      rl.prompt()
    }
    let failed = false
    prompt()
    for await (const line of rl) {
      const r = await execute(sh, line)
      if (r === 'exit') break
      if (r === 'failed') failed = true
      prompt()
    }
    rl.close()
    return failed ? 1 : 0
  })
}
