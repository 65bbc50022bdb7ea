/*
 * What the full-resync tests share: a varied tree written straight into a
 * directory (dirs, files of several sizes, symlinks, hard links, a fifo,
 * owners and times), a snapshot of a directory to compare two trees by
 * (type, mode, owner, size, mtime in ns, content hash, symlink target, which
 * names share an inode), and a primary (createServer over a local export)
 * replicating to a standby (StandbyNode) whose local backend is another
 * directory under the same export path.
 */
import type { Test } from 'tap'
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { chownSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseExports } from '../../../server/exports/parse.ts'
import { silentLogger } from '../../../server/logger.ts'
import type { Logger } from '../../../server/logger.ts'
import { PrimaryReplication } from '../../../server/replication/primary.ts'
import type { PrimaryOptions } from '../../../server/replication/primary.ts'
import { StandbyNode } from '../../../server/replication/standby-node.ts'
import { createServer } from '../../../server/index.ts'
import type { TsnfsServer } from '../../../server/index.ts'
import { LocalVfs } from '../../../vfs/local/local-vfs.ts'
import { prng } from '../../helpers/prng.ts'

/** Writes a tree of `dirs` directories and about `files` files under `root`; returns the file count. */
export function makeTree(root: string, seed: number, files = 60, dirs = 8, maxSize = 200_000): number {
  const rnd = prng(seed)
  const dirPaths = [root]
  for (let i = 0; i < dirs; i++) {
    const parent = dirPaths[Math.floor(rnd() * dirPaths.length)] ?? root
    const d = join(parent, `d${String(i)}`)
    mkdirSync(d, { mode: 0o750 })
    dirPaths.push(d)
  }
  const made: string[] = []
  const sizes = [0, 1, 100, 4095, 4096, 65_537, 1_048_576 + 3, 2_500_000]
  for (let i = 0; i < files; i++) {
    const dir = dirPaths[Math.floor(rnd() * dirPaths.length)] ?? root
    const p = join(dir, `f${String(i)}-${Math.floor(rnd() * 1e6).toString(36)}`)
    const size = i < sizes.length ? (sizes[i] ?? 0) : Math.floor(rnd() * maxSize)
    const data = Buffer.alloc(size)
    for (let j = 0; j < size; j += 4096) data[j] = Math.floor(rnd() * 256)
    writeFileSync(p, data, { mode: 0o640 })
    chownSync(p, 1000 + (i % 3), 100 + (i % 2))
    made.push(p)
  }
  // Two names of one file in the top directory, the first listed: both in one RESYNC_DIR part,
  // before any other name of the file was sent, so its data must be asked for once, not twice.
  const twin = join(root, 'twin')
  writeFileSync(twin, Buffer.alloc(3000, 7), { mode: 0o640 })
  linkSync(twin, join(root, 'twin-link'))
  made.push(twin)
  symlinkSync('f-does-not-exist', join(root, 'dangling'))
  symlinkSync(made[2] ?? 'x', join(dirPaths[1] ?? root, 'abs-link'))
  linkSync(made[3] ?? '', join(root, 'hard-1'))
  linkSync(made[3] ?? '', join(dirPaths.at(-1) ?? root, 'hard-2'))
  execFileSync('mkfifo', ['-m', '0600', join(root, 'fifo')])
  // Times in the past, so nothing is within the last second (checksums are then asked only with verify).
  const past = new Date(Date.UTC(2024, 0, 2, 3, 4, 5))
  for (const p of made) utimesSync(p, past, past)
  return made.length
}

export interface Node {
  type: string
  mode: number
  uid: number
  gid: number
  size: bigint
  mtimeNs: bigint
  hash?: string
  target?: string
  /** The other names of a file with hard links. */
  links?: string[]
}

/** Every object under `root` by relative path ('' is the root). Directory mtimes are left out unless `dirTimes`. */
export function snapshot(root: string, dirTimes = true): Record<string, Node> {
  const out: Record<string, Node> = {}
  const byIno = new Map<bigint, string[]>()
  const visit = (rel: string): void => {
    const p = rel === '' ? root : join(root, rel)
    const st = lstatSync(p, { bigint: true })
    const type = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : st.isFIFO() ? 'fifo' : 'other'
    const n: Node = { type, mode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid), size: type === 'dir' ? 0n : st.size, mtimeNs: type === 'dir' && !dirTimes ? 0n : st.mtimeNs }
    if (type === 'symlink') {
      n.target = readlinkSync(p)
      n.mode = 0
    }
    if (type === 'file') {
      n.hash = createHash('sha256').update(readFileSync(p)).digest('hex')
      if (st.nlink > 1n) byIno.set(st.ino, [...(byIno.get(st.ino) ?? []), rel])
    }
    out[rel] = n
    if (type === 'dir') for (const name of readdirSync(p).sort()) visit(rel === '' ? name : join(rel, name))
  }
  visit('')
  for (const names of byIno.values()) for (const name of names) (out[name] as Node).links = names.filter((x) => x !== name).sort()
  return out
}

export interface Pair {
  exportPath: string
  primaryState: string
  standbyState: string
  /** The standby's copy (its local backend's root). */
  standbyRoot: string
  server: TsnfsServer
  repl: PrimaryReplication
  standby: StandbyNode | null
  startStandby(): Promise<StandbyNode>
  stopStandby(): Promise<void>
}

export interface PairOptions {
  exportPath: string
  standbyRoot: string
  dir: string
  primary?: Partial<PrimaryOptions>
  log?: Logger
}

/** A primary serving `exportPath` (local) in sync mode, replicating to a standby whose copy is `standbyRoot`. */
export async function startPair(t: Test, o: PairOptions): Promise<Pair> {
  const primaryState = join(o.dir, 'primary-state')
  const standbyState = join(o.dir, 'standby-state')
  const log = o.log ?? silentLogger
  const exportsText = `${o.exportPath} *(rw,insecure,no_root_squash)\n`
  const standbyPort = { port: 0 }
  const pair: Pair = {
    exportPath: o.exportPath,
    primaryState,
    standbyState,
    standbyRoot: o.standbyRoot,
    server: null as unknown as TsnfsServer,
    repl: null as unknown as PrimaryReplication,
    standby: null,
    async startStandby() {
      const node = await StandbyNode.open({
        stateDir: standbyState,
        node: 'standby-b',
        listen: { host: '127.0.0.1', port: standbyPort.port },
        exports: parseExports(exportsText, 'exports'),
        serve: { port: 0, host: '127.0.0.1', locking: false },
        log,
        // The same export path, another directory: the standby's copy.
        backends: new Map([['local', (exp, ctx) => new LocalVfs({ root: o.standbyRoot, stateDir: join(ctx.stateDir, 'local', String(exp.id)) })]]),
      })
      standbyPort.port = node.port
      pair.standby = node
      return node
    },
    async stopStandby() {
      const s = pair.standby
      pair.standby = null
      await s?.close()
    },
  }
  await pair.startStandby()
  t.teardown(() => pair.stopStandby())
  pair.repl = await PrimaryReplication.open({
    stateDir: primaryState,
    cluster: 'tsnfs',
    node: 'primary-a',
    standbys: [{ host: '127.0.0.1', port: standbyPort.port }],
    mode: 'sync',
    heartbeatMs: 100,
    timeoutMs: 2000,
    log,
    ...o.primary,
  })
  pair.server = await createServer({ exports: parseExports(exportsText, 'exports'), stateDir: primaryState, port: 0, host: '127.0.0.1', locking: false, replication: pair.repl })
  t.teardown(() => pair.server.close().catch(() => undefined))
  return pair
}

/** Polls until `cond` holds; fails after `ms`. */
export async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** The primary's first standby: caught up with the log and not resyncing. */
export function caughtUp(pair: Pair, exportLast: () => bigint): boolean {
  const p = pair.repl.view().peers[0]
  return p !== undefined && p.alive && p.resync?.running !== true && p.resync?.needed !== true && p.acked === exportLast() && p.state === 'streaming'
}
