/*
 * The commands of `tsnfs shell`, each over the shell's mount and working
 * directory. They reuse what the one-shot commands print (ls, stat, df, cat)
 * and cp's copy routine (get, put).
 */
import { posix } from 'node:path'
import type { Writable } from 'node:stream'
import type { NfsClient } from '../client/index.ts'
import { at, baseName, parseCommand, PathError, UsageError } from './common.ts'
import { catPath } from './cat.ts'
import { copy } from './copy.ts'
import { dfLines } from './df.ts'
import { listPath } from './ls.ts'
import { modeArg } from './mkdir.ts'
import { movePath } from './mv.ts'
import { localSide } from './sides.ts'
import type { Side } from './sides.ts'
import { statPath } from './stat.ts'

export interface ShellState {
  client: NfsClient
  side: Side
  /** The mount URL's path: where `cd` without an argument goes. */
  home: string
  cwd: string
  out: Writable
}

export type ShellCommand = (sh: ShellState, args: string[]) => Promise<void>

/** A path typed in the shell, made absolute against the working directory. */
export function resolveIn(sh: ShellState, p: string): string {
  return posix.resolve(sh.cwd, p)
}

function need(args: readonly string[], min: number, max: number, usage: string): void {
  if (args.length < min || args.length > max) throw new UsageError(`usage: ${usage}`)
}

function write(sh: ShellState): (text: string) => void {
  return text => {
    sh.out.write(text)
  }
}

export const HELP = `commands (paths are relative to the working directory on the server):
  cd [DIR]                   change directory (no DIR: the directory of the mount URL)
  pwd                        print the working directory
  ls [-l] [-a] [-R] [PATH]   list a directory
  get [-r] [-p] REMOTE [LOCAL]   copy from the server (default: same name in the local cwd)
  put [-r] [-p] LOCAL [REMOTE]   copy to the server (default: same name in the working directory)
  cat PATH...                print files
  mkdir [-p] [-m MODE] DIR   create a directory
  rm [-r] [-f] PATH...       remove files (and trees with -r)
  rmdir DIR...               remove empty directories
  mv FROM TO                 rename (into TO when it is a directory)
  ln [-s] TARGET LINK        hard link, or symbolic link with text TARGET
  stat [-L] PATH...          all attributes
  df [-h]                    space and files of the export
  help                       this text
  exit, quit                 leave (end of input does too)
`

const cd: ShellCommand = async (sh, args) => {
  need(args, 0, 1, 'cd [DIR]')
  const arg = args[0]
  const dir = arg === undefined ? sh.home : resolveIn(sh, arg)
  const st = await at(arg ?? dir, () => sh.client.stat(dir))
  if (!st.isDirectory()) throw new PathError(arg ?? dir, 'Not a directory')
  sh.cwd = dir
}

const ls: ShellCommand = async (sh, args) => {
  const { values, positionals } = parseCommand(args, {
    long: { type: 'boolean', short: 'l' },
    all: { type: 'boolean', short: 'a' },
    recursive: { type: 'boolean', short: 'R' },
  })
  const opts = { long: values.long === true, all: values.all === true, recursive: values.recursive === true }
  const targets = positionals.length === 0 ? ['.'] : positionals
  let first = true
  for (const arg of targets) {
    if (!first) sh.out.write('\n')
    first = false
    await at(arg, () => listPath(sh.client, resolveIn(sh, arg), arg, opts, write(sh), targets.length > 1))
  }
}

function copyFlags(args: string[]): { recursive: boolean; preserve: boolean; rest: string[] } {
  const { values, positionals } = parseCommand(args, { recursive: { type: 'boolean', short: 'r' }, preserve: { type: 'boolean', short: 'p' } })
  return { recursive: values.recursive === true, preserve: values.preserve === true, rest: positionals }
}

const get: ShellCommand = async (sh, args) => {
  const { recursive, preserve, rest } = copyFlags(args)
  need(rest, 1, 2, 'get [-r] [-p] REMOTE [LOCAL]')
  const [remote = '', local] = rest
  const src = resolveIn(sh, remote)
  await copy([{ side: sh.side, path: src }], { side: localSide, path: local ?? (baseName(src) || '.') }, { recursive, preserve, progress: process.stderr })
}

const put: ShellCommand = async (sh, args) => {
  const { recursive, preserve, rest } = copyFlags(args)
  need(rest, 1, 2, 'put [-r] [-p] LOCAL [REMOTE]')
  const [local = '', remote] = rest
  const dst = remote === undefined ? sh.cwd : resolveIn(sh, remote)
  await copy([{ side: localSide, path: local }], { side: sh.side, path: dst }, { recursive, preserve, progress: process.stderr })
}

const cat: ShellCommand = async (sh, args) => {
  need(args, 1, Infinity, 'cat PATH...')
  for (const arg of args) await at(arg, () => catPath(sh.client, resolveIn(sh, arg), sh.out))
}

const mkdir: ShellCommand = async (sh, args) => {
  const { values, positionals } = parseCommand(args, { parents: { type: 'boolean', short: 'p' }, mode: { type: 'string', short: 'm' } })
  need(positionals, 1, Infinity, 'mkdir [-p] [-m MODE] DIR...')
  const mode = modeArg(values.mode)
  for (const arg of positionals) await at(arg, () => sh.client.mkdir(resolveIn(sh, arg), { mode, recursive: values.parents === true }))
}

const rm: ShellCommand = async (sh, args) => {
  const { values, positionals } = parseCommand(args, { recursive: { type: 'boolean', short: 'r' }, force: { type: 'boolean', short: 'f' } })
  need(positionals, 1, Infinity, 'rm [-r] [-f] PATH...')
  for (const arg of positionals) {
    await at(arg, () => sh.client.rm(resolveIn(sh, arg), { recursive: values.recursive === true, force: values.force === true }))
  }
}

const rmdir: ShellCommand = async (sh, args) => {
  need(args, 1, Infinity, 'rmdir DIR...')
  for (const arg of args) await at(arg, () => sh.client.rmdir(resolveIn(sh, arg)))
}

const mv: ShellCommand = async (sh, args) => {
  need(args, 2, 2, 'mv FROM TO')
  const [from = '', to = ''] = args
  await at(from, () => movePath(sh.client, resolveIn(sh, from), resolveIn(sh, to)))
}

const ln: ShellCommand = async (sh, args) => {
  const { values, positionals } = parseCommand(args, { symbolic: { type: 'boolean', short: 's' } })
  need(positionals, 2, 2, 'ln [-s] TARGET LINK')
  const [target = '', link = ''] = positionals
  const path = resolveIn(sh, link)
  if (values.symbolic === true) await at(link, () => sh.client.symlink(target, path))
  else await at(link, () => sh.client.link(resolveIn(sh, target), path))
}

const stat: ShellCommand = async (sh, args) => {
  const { values, positionals } = parseCommand(args, { dereference: { type: 'boolean', short: 'L' } })
  need(positionals, 1, Infinity, 'stat [-L] PATH...')
  for (const arg of positionals) sh.out.write(await at(arg, () => statPath(sh.client, resolveIn(sh, arg), arg, values.dereference === true)))
}

const df: ShellCommand = async (sh, args) => {
  const { values, positionals } = parseCommand(args, { human: { type: 'boolean', short: 'h' } })
  need(positionals, 0, 0, 'df [-h]')
  sh.out.write(`${(await dfLines(sh.client, values.human === true)).join('\n')}\n`)
}

const pwd: ShellCommand = async (sh, args) => {
  need(args, 0, 0, 'pwd')
  sh.out.write(`${sh.cwd}\n`)
  return Promise.resolve()
}

const help: ShellCommand = async sh => {
  sh.out.write(HELP)
  return Promise.resolve()
}

export const SHELL_COMMANDS: Readonly<Record<string, ShellCommand>> = { cd, pwd, ls, get, put, cat, mkdir, rm, rmdir, mv, ln, stat, df, help }

