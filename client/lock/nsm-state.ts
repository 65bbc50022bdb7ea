/*
 * This client's NSM state (RFC-less, as rpc.statd keeps it in
 * /var/lib/nfs/state and sm/): a state number, odd while running and
 * larger at each start, and the servers this host held locks on. At start
 * the servers of the previous instance are told (SM_NOTIFY) that we
 * restarted, so they free what that instance held. One file per caller
 * name, so two clients going by different names keep apart; written
 * whole to a temporary file and renamed over, so a crash leaves the old
 * or the new file, never half of one.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

/** A server we hold (or held) locks on, and where its portmapper may be (to find its NSM), likeliest first. */
export interface KnownServer {
  host: string
  portmapPorts: number[]
  proto: 'tcp' | 'udp'
}

interface StateFile {
  state: number
  servers: KnownServer[]
}

/** A state file is small; anything larger is not ours. */
const MAX_FILE = 256 * 1024
const MAX_SERVERS = 1024

export function sameServer(a: KnownServer, b: KnownServer): boolean {
  return a.host === b.host && a.portmapPorts.join() === b.portmapPorts.join()
}

function parse(text: string): StateFile | null {
  try {
    const v = JSON.parse(text) as Partial<StateFile>
    if (typeof v.state !== 'number' || !Number.isSafeInteger(v.state) || !Array.isArray(v.servers)) return null
    const servers = (v.servers as unknown[]).filter((s): s is KnownServer => {
      const k = s as Partial<Record<keyof KnownServer, unknown>> | null
      return typeof k === 'object' && k !== null && typeof k.host === 'string' && Array.isArray(k.portmapPorts) && k.portmapPorts.every(p => typeof p === 'number') && (k.proto === 'tcp' || k.proto === 'udp')
    })
    return { state: v.state, servers: servers.slice(0, MAX_SERVERS) }
  } catch {
    return null
  }
}

export class NsmState {
  readonly file: string
  /** This instance's state number (odd). */
  readonly state: number
  /** The servers the previous instance held locks on (to notify). */
  readonly previous: readonly KnownServer[]
  private servers: KnownServer[]
  private writing: Promise<void> = Promise.resolve()

  private constructor(file: string, state: number, previous: KnownServer[]) {
    this.file = file
    this.state = state
    this.previous = previous
    this.servers = [...previous]
  }

  /** Read the state of `callerName` in dir, start a new instance (the next odd number) and write it. */
  static async start(dir: string, callerName: string): Promise<NsmState> {
    await mkdir(dir, { recursive: true, mode: 0o700 })
    const file = join(dir, `client-${encodeURIComponent(callerName)}.json`)
    let old: StateFile | null = null
    try {
      const text = await readFile(file, 'utf8')
      if (text.length <= MAX_FILE) old = parse(text)
    } catch {
      // first start
    }
    const prev = old?.state ?? 0
    // Odd while up; a number that wrapped starts again at 1 (statd's counter is an int too).
    let state = prev % 2 === 1 ? prev + 2 : prev + 1
    if (state > 0x7fff_ffff) state = 1
    const s = new NsmState(file, state, old?.servers ?? [])
    await s.save()
    return s
  }

  get known(): readonly KnownServer[] {
    return this.servers
  }

  /** Note a server we are about to lock on (written before the lock is asked for, as statd records SM_MON). */
  async add(server: KnownServer): Promise<void> {
    if (this.servers.some(s => sameServer(s, server))) return
    if (this.servers.length >= MAX_SERVERS) this.servers.shift()
    this.servers.push({ ...server, portmapPorts: [...server.portmapPorts] })
    await this.save()
  }

  /** Keep only the servers `keep` accepts (those we still hold locks on, at a clean close). */
  async retain(keep: (s: KnownServer) => boolean): Promise<void> {
    const next = this.servers.filter(keep)
    if (next.length === this.servers.length) return
    this.servers = next
    await this.save()
  }

  /** Drop the servers of the previous instance that were notified (they freed its locks). */
  async forget(done: readonly KnownServer[]): Promise<void> {
    await this.retain(s => !done.some(d => sameServer(d, s)))
  }

  private save(): Promise<void> {
    const body = JSON.stringify({ state: this.state, servers: this.servers } satisfies StateFile)
    const next = this.writing.then(async () => {
      const tmp = `${this.file}.${String(process.pid)}.tmp`
      await writeFile(tmp, `${body}\n`, { mode: 0o600, flush: true })
      await rename(tmp, this.file)
    })
    this.writing = next.catch(() => undefined)
    return next
  }
}
