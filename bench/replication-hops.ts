/*
 * Where a replicated CREATE's and COMMIT's time goes, hop by hop (issue 15
 * §8): the primary (`tsnfs serve`, local-directory export) runs under
 * `strace -f -tt -T -yy`, a `tsnfs standby` (memory export) beside it, and
 * N ops (CREATE + 4 KiB UNSTABLE WRITE + COMMIT) go one at a time. The
 * trace is then read per op: the request's arrival (the read on the client
 * connection), the backend's calls (open O_CREAT; the file's fsync and the
 * handle index's write and fdatasync), the change log's write and
 * fdatasync, the APPEND round trip (the connection to the standby carrying
 * the WRITE data), the REPL_DRC round trip (the other one), and the reply.
 * Medians over the ops, per mode. Since REPL_APPEND_DRC a sync reply's cached
 * copy rides in its change's APPEND, so the REPL_DRC rows are absent (no
 * second connection) unless the standby is of an older build.
 *
 *   npx tsx bench/replication-hops.ts [--ops N] [--modes plain,async,sync] [--keep]
 *
 * strace slows every system call (tens of µs) and the wake-ups between
 * threads, so absolute times are inflated: read the shares and which hops
 * lie in a row. Needs strace.
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { NfsDriver } from './nfs-driver.ts'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
type Mode = 'plain' | 'sync' | 'async'

/** One system call of the trace: when it started and ended (ms), on which fd (as -yy names it), its text. */
export interface Call {
  start: number
  end: number
  name: string
  fd: string
  text: string
}

function ms(clock: string): number {
  const [h, m, s] = clock.split(':').map(Number) as [number, number, number]
  return ((h * 60 + m) * 60 + s) * 1000
}

/** The calls of an `strace -f -tt -T -yy` file in start order, each split call (unfinished, resumed) joined. */
export function parseTrace(text: string): Call[] {
  const open = new Map<string, Call>()
  const out: Call[] = []
  for (const line of text.split('\n')) {
    const whole = /^(\d+) +([\d:.]+) (\w+)\((?:\d+<([A-Z0-9]+:\[[^\]]*\]|[^>]*)>)?(.*?)(?: <unfinished \.\.\.>|\) += .*<([\d.]+)>)$/.exec(line)
    if (whole !== null) {
      const [, pid = '', clock = '', name = '', fd = '', text = '', dur] = whole
      const c: Call = { start: ms(clock), end: ms(clock) + Number(dur ?? 0) * 1000, name, fd, text }
      out.push(c)
      if (dur === undefined) open.set(pid, c)
      continue
    }
    const resumed = /^(\d+) +([\d:.]+) <\.\.\. (\w+) resumed>/.exec(line)
    if (resumed !== null) {
      const c = open.get(resumed[1] ?? '')
      if (c !== undefined) c.end = ms(resumed[2] ?? '')
      open.delete(resumed[1] ?? '')
    }
  }
  return out
}

export interface Hops {
  [hop: string]: number
}

/**
 * The hops of op `name` (the file's name): CREATE from its request's arrival to its reply, with
 * the backend's create, the log's write + fdatasync, the APPEND and REPL_DRC round trips started
 * after it; COMMIT likewise, with the file's fsync and the index's flush.
 */
export function hopsOf(calls: Call[], name: string, fds: { client: string; sender: string | null; drc: string | null; log: string | null }): Hops | null {
  const find = (from: number, pred: (c: Call) => boolean): number => {
    for (let i = from; i < calls.length; i++) if (pred(calls[i] as Call)) return i
    return -1
  }
  const before = (to: number, pred: (c: Call) => boolean): number => {
    for (let i = to; i >= 0; i--) if (pred(calls[i] as Call)) return i
    return -1
  }
  const created = find(0, (c) => c.name === 'openat' && c.text.includes(`/${name}"`) && c.text.includes('O_CREAT'))
  if (created < 0) return null
  const h: Hops = {}
  const req = calls[before(created, (c) => c.name === 'read' && c.fd === fds.client)]
  const reply = calls[find(created, (c) => c.name === 'write' && c.fd === fds.client)]
  if (req === undefined || reply === undefined) return null
  h['CREATE total'] = reply.start - req.end
  h['CREATE backend open'] = (calls[created] as Call).end - (calls[created] as Call).start
  const span = (i: number, j: number): number => (calls[j] as Call).end - (calls[i] as Call).start
  const roundTrip = (fd: string | null, label: string, from: number, until: number): void => {
    if (fd === null) return
    const w = find(from, (c) => c.name === 'write' && c.fd === fd)
    if (w < 0 || (calls[w] as Call).start > until) return
    const r = find(w, (c) => c.name === 'read' && c.fd === fd && !c.text.includes('EAGAIN'))
    if (r >= 0) h[label] = span(w, r)
  }
  if (fds.log !== null) {
    // The log's write, and its fdatasync when there is one (an O_DSYNC write is its own flush).
    const w = find(created, (c) => c.name === 'pwrite64' && c.fd === fds.log)
    if (w >= 0 && (calls[w] as Call).start < reply.start) {
      const s = find(w, (c) => c.name === 'fdatasync' && c.fd === fds.log)
      h['CREATE log write+fdatasync'] = span(w, s >= 0 && (calls[s] as Call).start < reply.start ? s : w)
      h['CREATE backend → log write'] = (calls[w] as Call).start - req.end
    }
  }
  roundTrip(fds.sender, 'CREATE APPEND round trip', created, reply.start)
  roundTrip(fds.drc, 'CREATE REPL_DRC round trip', created, reply.start)
  // Whether the reply's cached copy waits for the change's acknowledgement (REPL_DRC, > 0) or goes
  // alongside the APPEND (REPL_DRC_HELD, < 0): when it is sent, from the APPEND's answer.
  if (fds.sender !== null && fds.drc !== null) {
    const aw = find(created, (c) => c.name === 'write' && c.fd === fds.sender)
    const ar = aw < 0 ? -1 : find(aw, (c) => c.name === 'read' && c.fd === fds.sender && !c.text.includes('EAGAIN'))
    const dw = find(created, (c) => c.name === 'write' && c.fd === fds.drc)
    if (ar >= 0 && dw >= 0 && (calls[dw] as Call).start < reply.start) h['CREATE REPL_DRC sent − APPEND answered'] = (calls[dw] as Call).start - (calls[ar] as Call).end
  }
  // COMMIT: the file's fsync (its fd named by its path) and what follows it up to the reply.
  const sync = find(created, (c) => (c.name === 'fsync' || c.name === 'fdatasync') && c.fd.endsWith(`/${name}`))
  if (sync < 0) return h
  const creq = calls[before(sync, (c) => c.name === 'read' && c.fd === fds.client)]
  const creply = calls[find(sync, (c) => c.name === 'write' && c.fd === fds.client)]
  if (creq === undefined || creply === undefined) return h
  h['COMMIT total'] = creply.start - creq.end
  h['COMMIT file fsync'] = (calls[sync] as Call).end - (calls[sync] as Call).start
  const idx = find(sync, (c) => c.name === 'fdatasync' && c.fd.endsWith('index.log'))
  if (idx >= 0 && (calls[idx] as Call).start < creply.start) h['COMMIT index fdatasync'] = (calls[idx] as Call).end - (calls[idx] as Call).start
  return h
}

function waitFor(child: ChildProcess, which: 'stdout' | 'stderr', re: RegExp): Promise<RegExpExecArray> {
  let text = ''
  return new Promise((res, rej) => {
    const timer = setTimeout(() => { rej(new Error(`no ${String(re)}: ${text}`)) }, 60_000)
    child[which]?.on('data', (d: Buffer) => {
      text += d.toString()
      const m = re.exec(text)
      if (m !== null) {
        clearTimeout(timer)
        res(m)
      }
    })
  })
}

function tsnfs(args: string[], trace: string | null): ChildProcess {
  const node = [process.execPath, '--import', 'tsx', join(ROOT, 'cli/main.ts'), ...args]
  const cmd = trace === null ? node : ['strace', '-f', '-tt', '-T', '-yy', '-o', trace, '-e', 'trace=openat,read,write,pwrite64,fdatasync,fsync', ...node]
  // Its own process group, so the stop reaches node under strace too.
  return spawn(cmd[0] ?? '', cmd.slice(1), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
}

async function runMode(mode: Mode, ops: number, work: string): Promise<Hops[]> {
  const [exp, a, b] = ['export', 'a', 'b'].map((d) => mkdtempSync(join(work, `${mode}-${d}-`))) as [string, string, string]
  writeFileSync(join(a, 'exports'), `${exp} *(rw,insecure,no_root_squash)\n`)
  const children: ChildProcess[] = []
  const trace = join(work, `${mode}.strace`)
  const serveArgs = ['serve', '--exports', join(a, 'exports'), '--port', '0', '--host', '127.0.0.1', '--state-dir', a, '--no-lock', '--admin', 'off']
  let standbyPort: string | null = null
  try {
    if (mode !== 'plain') {
      writeFileSync(join(b, 'exports'), `${exp} *(rw,insecure,no_root_squash,backend=memory)\n`)
      const standby = tsnfs(['standby', '--listen', '127.0.0.1:0', '--exports', join(b, 'exports'), '--state-dir', b, '--port', '0', '--node', 'b'], null)
      children.push(standby)
      standbyPort = (await waitFor(standby, 'stdout', /replication on [^\s]+:(\d+),/))[1] ?? ''
      serveArgs.push('--standby', `127.0.0.1:${standbyPort}`, mode === 'sync' ? '--sync' : '--async', '--node', 'a')
    }
    const primary = tsnfs(serveArgs, trace)
    children.push(primary)
    const joined = mode === 'plain' ? null : waitFor(primary, 'stderr', /standby joined the sync set/)
    const port = Number((await waitFor(primary, 'stdout', /TCP and UDP port (\d+)/))[1])
    await joined
    const nfs = await NfsDriver.connect({ host: '127.0.0.1', exportPath: exp, nfsport: port, mountport: port, uid: 0, gid: 0 })
    const data = Buffer.alloc(4096, 7)
    for (let i = 0; i < ops; i++) {
      const fh = await nfs.create(nfs.root, `hop-${String(i)}`)
      await nfs.write(fh, 0n, data, 0)
      await nfs.commit(fh)
    }
    await nfs.close()
  } finally {
    await Promise.all(children.map((c) => new Promise<void>((res) => {
      if (c.exitCode !== null || c.signalCode !== null || c.pid === undefined) {
        res()
        return
      }
      c.once('exit', () => { res() })
      process.kill(-c.pid, 'SIGTERM')
    })))
  }
  const calls = parseTrace(readFileSync(trace, 'utf8'))
  // The connections by what they carry: the client's to the NFS port; to the standby, the sender's
  // (the most bytes: WRITE data) and the REPL_DRC one.
  const conns = new Set<string>()
  for (const c of calls) if (c.name === 'write' && c.fd.startsWith('TCP')) conns.add(c.fd)
  const toStandby = [...conns].filter((fd) => standbyPort !== null && fd.endsWith(`:${standbyPort}]`))
  const weight = (fd: string): number => calls.filter((c) => c.fd === fd && c.name === 'write').reduce((n, c) => n + Number(/, (\d+)$/.exec(c.text)?.[1] ?? 0), 0)
  toStandby.sort((x, y) => weight(y) - weight(x))
  const first = calls.find((c) => c.name === 'openat' && c.text.includes('/hop-0"'))
  const client = first === undefined ? '' : [...calls].reverse().find((c) => c.name === 'read' && c.start <= first.start && c.fd.startsWith('TCP') && !toStandby.includes(c.fd))?.fd ?? ''
  const log = calls.find((c) => c.name === 'pwrite64' && /\/log\/\d+\.log$/.test(c.fd))?.fd ?? null
  const fds = { client, sender: toStandby[0] ?? null, drc: toStandby[1] ?? null, log }
  const out: Hops[] = []
  for (let i = 0; i < ops; i++) {
    const h = hopsOf(calls, `hop-${String(i)}`, fds)
    if (h !== null) out.push(h)
  }
  return out
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { ops: { type: 'string', default: '200' }, modes: { type: 'string', default: 'plain,async,sync' }, keep: { type: 'boolean' } } })
  const ops = Number(values.ops)
  const modes = values.modes.split(',').filter((m): m is Mode => m === 'plain' || m === 'sync' || m === 'async')
  const work = mkdtempSync(join(tmpdir(), 'tsnfs-bench-hops-'))
  const table = new Map<string, Map<Mode, string>>()
  try {
    for (const mode of modes) {
      const hops = await runMode(mode, ops, work)
      const names = new Set(hops.flatMap((h) => Object.keys(h)))
      for (const name of names) {
        const v = hops.map((h) => h[name]).filter((x): x is number => x !== undefined).sort((x, y) => x - y)
        const row = table.get(name) ?? new Map<Mode, string>()
        row.set(mode, `${(v[Math.floor(v.length / 2)] ?? NaN).toFixed(3)} (${String(v.length)})`)
        table.set(name, row)
      }
      process.stderr.write(`${mode}: ${String(hops.length)} ops traced\n`)
    }
  } finally {
    if (values.keep === true) process.stderr.write(`traces kept in ${work}\n`)
    else rmSync(work, { recursive: true, force: true })
  }
  process.stdout.write(`| hop (median ms, ops seen) | ${modes.join(' | ')} |\n|---|${modes.map(() => '---').join('|')}|\n`)
  for (const [name, row] of table) process.stdout.write(`| ${name} | ${modes.map((m) => row.get(m) ?? '—').join(' | ')} |\n`)
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main()
