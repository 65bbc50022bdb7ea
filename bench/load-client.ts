/*
 * One load client (issue 7 §3): an NfsClient working in its own directory,
 * keeping a model of what that directory must hold, checking every read,
 * listing and stat against it as it goes, and counting whatever fails.
 */
import { createHash, randomBytes } from 'node:crypto'
import { NfsClient } from '../client/index.ts'
import type { Protocol } from '../client/index.ts'

export interface LoadClientOptions {
  id: number
  port: number
  exportPath: string
  proto: Protocol
  seed: number
  /** Largest file written (bytes). */
  maxFileSize: number
  /** Files kept in the directory at most. */
  maxFiles: number
}

export interface ClientResult {
  id: number
  proto: Protocol
  /** Workload operations done (each one or more NFS calls). */
  ops: number
  /** NFS calls the client made, and what its transport did. */
  calls: number
  retransmits: number
  timeouts: number
  errors: string[]
  /** name -> sha256 of the content the directory must hold at the end ('' for a directory). */
  model: Map<string, string>
}

const OPS = ['create', 'overwrite', 'read', 'rename', 'remove', 'readdir', 'getattr', 'mkdir', 'rmdir'] as const
type Op = (typeof OPS)[number]

/** mulberry32: a small seeded generator, so a run can be repeated. */
function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b_79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4_294_967_296
  }
}

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

export class LoadClient {
  readonly opts: LoadClientOptions
  readonly dir: string
  private readonly random: () => number
  private readonly files = new Map<string, Buffer>()
  private readonly dirs = new Set<string>()
  private next = 0
  private ops = 0
  private readonly errors: string[] = []
  private nfs: NfsClient | null = null

  constructor(opts: LoadClientOptions) {
    this.opts = opts
    this.dir = `/c${String(opts.id)}`
    this.random = rng(opts.seed)
  }

  async mount(): Promise<void> {
    this.nfs = await NfsClient.mount(
      { host: '127.0.0.1', exportPath: this.opts.exportPath },
      { proto: this.opts.proto, nfsport: this.opts.port, mountport: this.opts.port, uid: 0, gid: 0, hard: false },
    )
    await this.nfs.mkdir(this.dir)
  }

  /** Run operations until `stopAt` (Date.now()), stopping early at the first error. */
  async run(stopAt: number): Promise<void> {
    const nfs = this.nfs
    if (nfs === null) throw new Error('mount() first')
    while (Date.now() < stopAt && this.errors.length === 0) {
      const op = this.pick()
      try {
        await this.step(nfs, op)
        this.ops++
      } catch (err) {
        this.errors.push(`client ${String(this.opts.id)} (${this.opts.proto}) ${op}: ${err instanceof Error ? err.message : String(err)}`)
      }
    }
  }

  async close(): Promise<ClientResult> {
    const nfs = this.nfs
    this.nfs = null
    const s = nfs?.stats()
    try {
      await nfs?.umount()
    } catch (err) {
      this.errors.push(`client ${String(this.opts.id)} umount: ${err instanceof Error ? err.message : String(err)}`)
    }
    const model = new Map<string, string>()
    for (const [name, data] of this.files) model.set(name, sha256(data))
    for (const d of this.dirs) model.set(d, '')
    return {
      id: this.opts.id,
      proto: this.opts.proto,
      ops: this.ops,
      calls: s === undefined ? 0 : Object.values(s.nfs).reduce((a, b) => a + b, 0),
      retransmits: s?.rpc.retransmits ?? 0,
      timeouts: s?.rpc.timeouts ?? 0,
      errors: this.errors,
      model,
    }
  }

  private pick(): Op {
    for (;;) {
      const op = OPS[Math.floor(this.random() * OPS.length)] ?? 'getattr'
      if (op === 'create' || op === 'mkdir') {
        if (this.files.size + this.dirs.size < this.opts.maxFiles) return op
      } else if (op === 'rmdir') {
        if (this.dirs.size > 0) return op
      } else if (op === 'readdir' || this.files.size > 0) {
        return op
      }
    }
  }

  private anyFile(): string {
    const names = [...this.files.keys()]
    return names[Math.floor(this.random() * names.length)] ?? ''
  }

  private data(): Buffer {
    // Mostly small files, some up to the maximum; random bytes, so misplaced data shows.
    return randomBytes(Math.floor(this.random() * this.random() * this.opts.maxFileSize))
  }

  private async step(nfs: NfsClient, op: Op): Promise<void> {
    const at = (name: string): string => `${this.dir}/${name}`
    switch (op) {
      case 'create': {
        const name = `f${String(this.next++)}`
        const data = this.data()
        // GUARDED: a duplicate execution would come back as EXIST.
        await nfs.create(at(name), { exclusive: true })
        await nfs.writeFile(at(name), data)
        this.files.set(name, data)
        return
      }
      case 'overwrite': {
        const name = this.anyFile()
        const data = this.data()
        await nfs.writeFile(at(name), data)
        this.files.set(name, data)
        return
      }
      case 'read': {
        const name = this.anyFile()
        const got = await nfs.readFile(at(name))
        const want = this.files.get(name) ?? Buffer.alloc(0)
        if (!got.equals(want)) throw new Error(`${name}: read ${String(got.length)} bytes that differ from the ${String(want.length)} written`)
        return
      }
      case 'rename': {
        const from = this.anyFile()
        const to = this.random() < 0.3 ? this.anyFile() : `f${String(this.next++)}`
        await nfs.rename(at(from), at(to))
        const data = this.files.get(from) ?? Buffer.alloc(0)
        this.files.delete(from)
        this.files.set(to, data)
        return
      }
      case 'remove': {
        const name = this.anyFile()
        await nfs.unlink(at(name))
        this.files.delete(name)
        return
      }
      case 'readdir': {
        const got = (await nfs.readdir(this.dir)).sort()
        const want = [...this.files.keys(), ...this.dirs].sort()
        if (got.join('/') !== want.join('/')) throw new Error(`readdir: [${got.join(' ')}], expected [${want.join(' ')}]`)
        return
      }
      case 'getattr': {
        const name = this.anyFile()
        const st = await nfs.stat(at(name))
        const want = this.files.get(name)?.length ?? -1
        if (Number(st.size) !== want || !st.isFile()) throw new Error(`${name}: stat size ${String(st.size)}, expected ${String(want)}`)
        return
      }
      case 'mkdir': {
        const name = `d${String(this.next++)}`
        await nfs.mkdir(at(name))
        this.dirs.add(name)
        return
      }
      case 'rmdir': {
        const name = [...this.dirs][Math.floor(this.random() * this.dirs.size)] ?? ''
        await nfs.rmdir(at(name))
        this.dirs.delete(name)
        return
      }
    }
  }
}

/** The directory as the server holds it: name -> sha256 ('' for a directory), read with a fresh client. */
export async function listState(nfs: NfsClient, dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  for (const e of await nfs.readdirPlus(dir)) {
    const path = `${dir}/${e.name}`
    const isDir = e.stats?.isDirectory() ?? (await nfs.lstat(path)).isDirectory()
    out.set(e.name, isDir ? '' : sha256(await nfs.readFile(path)))
  }
  return out
}
