/*
 * Processes acting as other users, for permission tests: each runs as one
 * identity (setpriv: real and effective uid and gid, exact supplementary
 * groups) and does file system calls on request, one JSON line in
 * (`[op, ...args]`) and one out: 'OK', the errno name the call failed
 * with, or what it read (stat: owner, group, mode, links). The same calls
 * on a local directory give the kernel's own answers to compare with.
 */
import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import type { ChildProcessWithoutNullStreams } from 'node:child_process'
import { createInterface } from 'node:readline'

export interface Identity {
  name: string
  uid: number
  gid: number
  groups: number[]
}

export type Answer = string | number | { uid: number; gid: number; mode: string; nlink: number; size: number }

/** The worker, plain CommonJS for `node -e` (it runs as a user who may not read this checkout). */
const WORKER_SOURCE = String.raw`
const fs = require('fs')
const { execFileSync } = require('child_process')
const C = fs.constants
process.umask(0o022)
const flagsOf = names => names.reduce((f, n) => f | C[n], 0)
const errnoOf = text => /Permission denied/.test(text) ? 'EACCES' : /Operation not permitted/.test(text) ? 'EPERM' : /No such file/.test(text) ? 'ENOENT' : 'E?'
const statOf = s => ({ uid: s.uid, gid: s.gid, mode: (s.mode & 0o7777).toString(8), nlink: s.nlink, size: s.size })
const held = new Map()
const ops = {
  stat: p => statOf(fs.lstatSync(p)),
  open: (p, flags, mode) => { fs.closeSync(fs.openSync(p, flagsOf(flags), mode)) },
  read: p => fs.readFileSync(p).length,
  write: (p, text) => { const fd = fs.openSync(p, C.O_WRONLY | C.O_APPEND); try { fs.writeSync(fd, text) } finally { fs.closeSync(fd) } },
  // open(2) with flags, then ftruncate(2) through the descriptor (a truncate that acts as the opener).
  ftruncate: (p, flags, mode, len) => { const fd = fs.openSync(p, flagsOf(flags), mode); try { fs.ftruncateSync(fd, len) } finally { fs.closeSync(fd) } },
  hold: (key, p, flags) => { held.set(key, fs.openSync(p, flagsOf(flags))) },
  fstat: key => statOf(fs.fstatSync(held.get(key))),
  release: key => { fs.closeSync(held.get(key)); held.delete(key) },
  mkdir: (p, mode) => { fs.mkdirSync(p, mode) },
  rmdir: p => { fs.rmdirSync(p) },
  unlink: p => { fs.unlinkSync(p) },
  rename: (a, b) => { fs.renameSync(a, b) },
  link: (a, b) => { fs.linkSync(a, b) },
  symlink: (target, p) => { fs.symlinkSync(target, p) },
  readlink: p => fs.readlinkSync(p),
  readdir: p => fs.readdirSync(p).length,
  truncate: (p, len) => { fs.truncateSync(p, len) },
  chmod: (p, mode) => { fs.chmodSync(p, mode) },
  chown: (p, uid, gid) => { fs.chownSync(p, uid, gid) },
  lchown: (p, uid, gid) => { fs.lchownSync(p, uid, gid) },
  utimes: (p, atime, mtime) => { fs.utimesSync(p, atime, mtime) },
  // utimensat(path, NULL): "now", which needs write permission rather than ownership (node has no call for it).
  touch: p => {
    try { execFileSync('touch', ['-c', p], { stdio: ['ignore', 'ignore', 'pipe'] }) } catch (e) { throw { code: errnoOf(String(e.stderr)) } }
  },
}
require('readline').createInterface({ input: process.stdin }).on('line', line => {
  const [op, ...args] = JSON.parse(line)
  let out
  try {
    const v = ops[op](...args)
    out = v === undefined ? 'OK' : v
  } catch (e) {
    out = (e && e.code) || String(e)
  }
  process.stdout.write(JSON.stringify(out) + '\n')
})
`

export class AsUser {
  readonly id: Identity
  private readonly child: ChildProcessWithoutNullStreams
  private readonly waiting: ((a: Answer) => void)[] = []

  private constructor(id: Identity, child: ChildProcessWithoutNullStreams) {
    this.id = id
    this.child = child
    createInterface({ input: child.stdout }).on('line', line => {
      this.waiting.shift()?.(JSON.parse(line) as Answer)
    })
  }

  /** A worker acting as id (root: this process's own identity), stopped at teardown. */
  static start(t: Test, id: Identity): AsUser {
    const env = { ...process.env }
    delete env.NODE_OPTIONS
    const node = [process.execPath, '-e', WORKER_SOURCE]
    const groups = id.groups.length === 0 ? '--clear-groups' : `--groups=${id.groups.join(',')}`
    const argv = id.uid === 0 && id.gid === 0 ? node : ['setpriv', `--reuid=${String(id.uid)}`, `--regid=${String(id.gid)}`, groups, '--', ...node]
    const [cmd = '', ...args] = argv
    const child = spawn(cmd, args, { cwd: '/', env, stdio: ['pipe', 'pipe', 'pipe'] })
    const w = new AsUser(id, child)
    child.on('exit', () => {
      for (const r of w.waiting.splice(0)) r('EXITED')
    })
    t.teardown(() => {
      child.stdin.end()
    })
    return w
  }

  /** One call: 'OK', an errno name, or what it read. */
  do(op: string, ...args: unknown[]): Promise<Answer> {
    return new Promise(resolve => {
      this.waiting.push(resolve)
      this.child.stdin.write(`${JSON.stringify([op, ...args])}\n`)
    })
  }
}
