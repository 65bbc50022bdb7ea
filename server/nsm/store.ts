/*
 * What the status monitor keeps on disk (`nsm.json` in the state
 * directory): our state number and the monitor list. Both must survive a
 * restart: the state number tells peers we restarted (it only ever grows),
 * and the list says whom to tell. Saved atomically (a temp file renamed into
 * place, as the mount list is); saves are serialized, and changes made while
 * a save waits are written by that one save.
 */
import { rename, unlink } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { Type } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { SM_MAXSTRLEN } from '../../xdr/generated/nsm.ts'
import { readIfExists, writeTemp } from '../state.ts'
import type { StateLogger } from '../state.ts'

/** Whom to call back when the watched host restarts: a local lock manager's SM_MON (XNFS 3W ch. 11). */
export interface NsmCallback {
  my_name: string
  my_prog: number
  my_vers: number
  my_proc: number
  /** 16 bytes, handed back in sm_status. */
  priv: Buffer
}

export interface NsmEntry {
  /** The watched host's name (mon_name; the NLM's caller_name). */
  name: string
  /** Where we last saw it; SM_NOTIFY goes to this host's portmapper. */
  address: string
  /** null: monitored for our own NLM (StatusMonitor.monitor), which hears of restarts through onPeerRestart. */
  callback: NsmCallback | null
}

export const NSM_FILE = 'nsm.json'
/** The largest state number: sm_stat's state is an XDR int. */
export const MAX_STATE = 0x7fff_ffff

const Name = Type.String({ maxLength: SM_MAXSTRLEN })
const Int = Type.Integer({ minimum: -0x8000_0000, maximum: MAX_STATE })
const Checker = TypeCompiler.Compile(
  Type.Object({
    version: Type.Literal(1),
    state: Type.Integer({ minimum: 0, maximum: MAX_STATE }),
    entries: Type.Array(
      Type.Object({
        name: Name,
        address: Name,
        callback: Type.Union([
          Type.Null(),
          Type.Object({ my_name: Name, my_prog: Int, my_vers: Int, my_proc: Int, priv: Type.String({ pattern: '^[0-9a-f]{32}$' }) }),
        ]),
      }),
    ),
  }),
)

/**
 * The next state number after a (re)start: odd while running, so the next
 * odd number (statd's convention; XNFS: even means down). Wraps to 1 rather
 * than leaving the XDR int.
 */
export function nextOddState(state: number): number {
  const next = state % 2 === 0 ? state + 1 : state + 2
  return next > MAX_STATE ? 1 : next
}

export class NsmStore {
  readonly path: string
  private stateValue: number
  private list: readonly NsmEntry[]
  private tail: Promise<void> = Promise.resolve()
  /** A save queued behind the running one, not yet started: later changes join it. */
  private queued: Promise<void> | null = null

  private constructor(path: string, state: number, entries: readonly NsmEntry[]) {
    this.path = path
    this.stateValue = state
    this.list = entries
  }

  /** Loads `nsm.json` from `dir`; missing is state 0 and no entries; a corrupt file is logged and treated as missing. */
  static async open(dir: string, log?: StateLogger): Promise<NsmStore> {
    const path = join(dir, NSM_FILE)
    const raw = await readIfExists(path)
    if (raw === null) return new NsmStore(path, 0, [])
    let parsed: unknown = undefined
    try {
      parsed = JSON.parse(raw.toString('utf8'))
    } catch {
      // handled below as corrupt
    }
    if (!Checker.Check(parsed)) {
      log?.warn({ path }, 'the status monitor file is corrupt; starting from state 0 with an empty monitor list')
      return new NsmStore(path, 0, [])
    }
    const entries = parsed.entries.map((e) => ({
      name: e.name,
      address: e.address,
      callback: e.callback === null ? null : { ...e.callback, priv: Buffer.from(e.callback.priv, 'hex') },
    }))
    return new NsmStore(path, parsed.state, entries)
  }

  get state(): number {
    return this.stateValue
  }

  get entries(): readonly NsmEntry[] {
    return this.list
  }

  /** Replace the state and/or the list; resolves once they are on disk. */
  commit(next: { state?: number; entries?: readonly NsmEntry[] }): Promise<void> {
    if (next.state !== undefined) this.stateValue = next.state
    if (next.entries !== undefined) this.list = next.entries
    return this.save()
  }

  /** Resolves once every change made so far is on disk (or its save failed). */
  flushed(): Promise<void> {
    return this.tail
  }

  private save(): Promise<void> {
    if (this.queued !== null) return this.queued
    const run = this.tail.then(async () => {
      this.queued = null
      const text = JSON.stringify({
        version: 1,
        state: this.stateValue,
        entries: this.list.map((e) => ({ ...e, callback: e.callback === null ? null : { ...e.callback, priv: e.callback.priv.toString('hex') } })),
      })
      const tmp = await writeTemp(dirname(this.path), NSM_FILE, text + '\n')
      try {
        await rename(tmp, this.path)
      } catch (err) {
        await unlink(tmp).catch(() => undefined)
        throw err
      }
    })
    this.queued = run
    this.tail = run.catch(() => undefined)
    return run
  }
}
