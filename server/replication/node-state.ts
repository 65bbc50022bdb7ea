/*
 * A node's durable replication identity (server/replication/README.md, "Roles
 * and takeover"): which cluster it belongs to, its name, its role and the
 * epoch it has seen. Kept in STATE-DIR/replication/node.json, replaced
 * atomically (a temp file fsynced, renamed over, the directory fsynced), so a
 * crash leaves the old identity or the new one, never half of either. The
 * epoch only rises: a node that forgot a takeover could serve as a second
 * primary.
 */
import { mkdir, open, rename, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { readIfExists, writeTemp } from '../state.ts'

export type NodeRole = 'primary' | 'standby' | 'fenced'

export interface NodeIdentity {
  cluster: string
  node: string
  role: NodeRole
  epoch: bigint
}

export type NodeStateErrorCode = 'NODE_STATE_CORRUPT' | 'NODE_STATE_VERSION' | 'NODE_STATE_EPOCH' | 'NODE_STATE_MISMATCH'

export class NodeStateError extends Error {
  readonly code: NodeStateErrorCode
  constructor(code: NodeStateErrorCode, message: string) {
    super(message)
    this.name = 'NodeStateError'
    this.code = code
  }
}

/** The format of node.json; a reader refuses another version rather than guess. */
export const NODE_STATE_VERSION = 1
const FILE = 'node.json'
/** node.json is a few hundred bytes; anything much larger is not ours. */
const MAX_FILE_BYTES = 4096
/** The .x caps node and cluster names at REPL_MAXID bytes. */
const MAX_NAME_BYTES = 64
const ROLES: readonly NodeRole[] = ['primary', 'standby', 'fenced']

/** The replication folder of a state directory (created 0700 on first use). */
export function replicationDir(stateDir: string): string {
  return join(stateDir, 'replication')
}

/** Writes `data` to dir/name atomically and durably: temp + fsync, rename, fsync of the directory. */
export async function writeAtomic(dir: string, name: string, data: Buffer | string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const tmp = await writeTemp(dir, name, data)
  try {
    await rename(tmp, join(dir, name))
  } catch (err) {
    await unlink(tmp).catch(() => undefined)
    throw err
  }
  // The rename is durable only once the directory is (rename(2) changes the directory, not the file).
  const d = await open(dir, 'r')
  try {
    await d.sync()
  } finally {
    await d.close()
  }
}

function checkName(what: string, v: string): void {
  if (v === '' || Buffer.byteLength(v) > MAX_NAME_BYTES) {
    throw new NodeStateError('NODE_STATE_MISMATCH', `${what} must be 1 to ${MAX_NAME_BYTES} bytes, got ${JSON.stringify(v)}`)
  }
}

function parse(path: string, raw: Buffer): NodeIdentity {
  const corrupt = (why: string): NodeStateError => new NodeStateError('NODE_STATE_CORRUPT', `${path}: ${why}`)
  if (raw.length > MAX_FILE_BYTES) throw corrupt(`${raw.length} bytes, more than ${MAX_FILE_BYTES}`)
  let v: unknown
  try {
    v = JSON.parse(raw.toString('utf8'))
  } catch {
    throw corrupt('not JSON')
  }
  if (typeof v !== 'object' || v === null) throw corrupt('not an object')
  const o = v as Record<string, unknown>
  if (o.version !== NODE_STATE_VERSION) {
    if (typeof o.version === 'number') {
      throw new NodeStateError('NODE_STATE_VERSION', `${path}: format version ${o.version}, this tsnfs reads version ${NODE_STATE_VERSION}`)
    }
    throw corrupt('no version')
  }
  const { cluster, node, role, epoch } = o
  if (typeof cluster !== 'string' || cluster === '' || Buffer.byteLength(cluster) > MAX_NAME_BYTES) throw corrupt('bad cluster')
  if (typeof node !== 'string' || node === '' || Buffer.byteLength(node) > MAX_NAME_BYTES) throw corrupt('bad node')
  if (typeof role !== 'string' || !(ROLES as readonly string[]).includes(role)) throw corrupt('bad role')
  if (typeof epoch !== 'string' || !/^\d{1,20}$/.test(epoch) || BigInt(epoch) >= 2n ** 64n) throw corrupt('bad epoch')
  return { cluster, node, role: role as NodeRole, epoch: BigInt(epoch) }
}

function serialize(s: NodeIdentity): string {
  // The epoch as a decimal string: JSON numbers lose precision past 2^53.
  return JSON.stringify({ version: NODE_STATE_VERSION, cluster: s.cluster, node: s.node, role: s.role, epoch: s.epoch.toString() }) + '\n'
}

/**
 * The identity of this node, loaded once and changed only through update(),
 * which writes before it returns (so a reply sent after it describes what a
 * crash would keep). Updates are serialized.
 */
export class NodeState {
  readonly dir: string
  private current: NodeIdentity
  private tail: Promise<void> = Promise.resolve()

  private constructor(dir: string, current: NodeIdentity) {
    this.dir = dir
    this.current = current
  }

  /**
   * Opens STATE-DIR/replication/node.json, creating it from `initial` when
   * absent. A file of another cluster or node name is NODE_STATE_MISMATCH
   * (a state directory copied between nodes); a corrupt one NODE_STATE_CORRUPT.
   */
  static async open(stateDir: string, initial: NodeIdentity): Promise<NodeState> {
    checkName('cluster', initial.cluster)
    checkName('node', initial.node)
    const dir = replicationDir(stateDir)
    const path = join(dir, FILE)
    const raw = await readIfExists(path)
    if (raw === null) {
      await writeAtomic(dir, FILE, serialize(initial))
      return new NodeState(dir, { ...initial })
    }
    const found = parse(path, raw)
    if (found.cluster !== initial.cluster || found.node !== initial.node) {
      throw new NodeStateError(
        'NODE_STATE_MISMATCH',
        `${path} belongs to node ${JSON.stringify(found.node)} of cluster ${JSON.stringify(found.cluster)}, not ${JSON.stringify(initial.node)} of ${JSON.stringify(initial.cluster)}`,
      )
    }
    return new NodeState(dir, found)
  }

  /** Reads a state directory's identity without opening it for changes (null: none yet). */
  static async read(stateDir: string): Promise<NodeIdentity | null> {
    const path = join(replicationDir(stateDir), FILE)
    const raw = await readIfExists(path)
    return raw === null ? null : parse(path, raw)
  }

  get(): NodeIdentity {
    return { ...this.current }
  }

  /**
   * Changes role and/or epoch durably. An epoch lower than the current one is
   * NODE_STATE_EPOCH (nothing written).
   */
  update(change: { role?: NodeRole; epoch?: bigint }): Promise<NodeIdentity> {
    const run = this.tail.then(async () => {
      const next: NodeIdentity = { ...this.current, ...change }
      if (next.epoch < this.current.epoch) {
        throw new NodeStateError('NODE_STATE_EPOCH', `epoch ${next.epoch} is below this node's ${this.current.epoch}: epochs only rise`)
      }
      if (next.role === this.current.role && next.epoch === this.current.epoch) return this.get()
      await writeAtomic(this.dir, FILE, serialize(next))
      this.current = next
      return this.get()
    })
    this.tail = run.then(
      () => undefined,
      () => undefined,
    )
    return run
  }
}
