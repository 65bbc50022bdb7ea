/*
 * The DATA service of one NDMP session: its state machine, its data connection (a listener while
 * LISTEN, an endpoint once CONNECTED) and the running operation. Handlers (service.ts) call these
 * methods with decoded requests in our terms; failures throw NdmpError with the draft's error.
 * The draft allows one operation per session; a DMA drives several sessions for several jobs.
 */
import type { BackupFormat, RestoreTarget } from '../../../backup/types.ts'
import { VfsError } from '../../../vfs/errors.ts'
import { connectTcp, DataConnectionError, listenTcp, localDataPort } from '../mover/connection.ts'
import type { DataEndpoint, DataListener, TcpAddr } from '../mover/connection.ts'
import { DEFAULT_RECORD_SIZE } from '../mover/mover.ts'
import { NdmpError } from '../service-types.ts'
import type { NdmpExport, NdmpSession } from '../service-types.ts'
import type { ConnectTarget } from './addr.ts'
import { runBackup } from './backup-run.ts'
import type { LevelKeeper, TreeLease } from './backup-run.ts'
import { DataEnvError, parseBackupEnv, parseRecoverEnv, resultEnv } from './env.ts'
import type { Pval } from './env.ts'
import { components, lookupPath, makePath, splitExportPath } from './paths.ts'
import type { DataPeer } from './peer.ts'
import { runRecover } from './recover-run.ts'
import type { ListStream, RecoverName } from './recover-run.ts'
import { DataHaltReason, DataMachine, DataOperation, DataStateError, NdmpErr } from './state.ts'

/** What the DATA service needs besides the session: the backup format and the level store. */
export interface DataDeps {
  /** The format and the level store kept under `<stateDir>/ndmp/levels` (made once per server). */
  backend(stateDir: string): Promise<{ format: BackupFormat; levels: LevelKeeper }>
  list: ListStream
}

/** An nlist entry as the wire gives it, version-neutral. */
export interface WireName {
  original: string
  destination: string
  fhInfo: bigint | null
}

/** ndmp_u_quad's "no value" (the SDK's NDMP_INVALID_U_QUAD). */
export const INVALID_U_QUAD = 0xffffffffffffffffn

function illegalArgs(message: string): NdmpError {
  return new NdmpError(NdmpErr.ILLEGAL_ARGS_ERR, message)
}

export class DataSession {
  readonly machine = new DataMachine()
  private listener: DataListener | null = null
  private endpoint: DataEndpoint | null = null
  private tcpAddresses: TcpAddr[] = []
  private abort: AbortController | null = null
  private sentEnv: Pval[] = []
  private ourEnv: Record<string, string> = {}
  /** The running operation (tests await it; nobody else needs to). */
  running: Promise<void> = Promise.resolve()
  private readonly session: NdmpSession
  private readonly deps: DataDeps
  private readonly peer: DataPeer

  constructor(session: NdmpSession, deps: DataDeps, peer: DataPeer) {
    this.session = session
    this.deps = deps
    this.peer = peer
  }

  get addresses(): readonly TcpAddr[] {
    return this.tcpAddresses
  }

  private guard<T>(fn: () => T): T {
    try {
      return fn()
    } catch (err) {
      if (err instanceof DataStateError) throw new NdmpError(err.error, err.message)
      throw err
    }
  }

  /** DATA_LISTEN: LOCAL pairs with this session's MOVER_CONNECT, TCP with a mover anywhere. */
  async listen(addrType: number): Promise<{ type: 'local' } | { type: 'tcp'; addrs: TcpAddr[] }> {
    this.guard(() => {
      this.machine.checkCanConnect('DATA_LISTEN')
    })
    if (addrType !== 0 && addrType !== 1) throw illegalArgs(`DATA_LISTEN: address type ${String(addrType)} is not LOCAL or TCP`)
    let listener: DataListener
    if (addrType === 0) {
      try {
        listener = localDataPort(this.session).listen()
      } catch (err) {
        throw new NdmpError(NdmpErr.ILLEGAL_STATE_ERR, `DATA_LISTEN: ${err instanceof Error ? err.message : String(err)}`)
      }
      this.machine.listening({ type: 'local' })
    } else {
      const local = this.session.local
      const host = local.family === 'IPv4' ? local.address.replace(/^::ffff:/, '') : '0.0.0.0'
      listener = await listenTcp({ host: /^\d+\.\d+\.\d+\.\d+$/.test(host) ? host : '0.0.0.0' })
      const first = listener.addresses[0]
      if (first === undefined) {
        listener.close()
        throw new NdmpError(NdmpErr.CONNECT_ERR, 'DATA_LISTEN: no IPv4 address to offer')
      }
      this.tcpAddresses = listener.addresses
      this.machine.listening({ type: 'tcp', host: first.host, port: first.port })
    }
    this.listener = listener
    listener.accept().then(
      (ep) => {
        if (this.listener !== listener) {
          ep.close()
          return
        }
        this.listener = null
        this.endpoint = ep
        this.machine.connected(this.machine.status.addr)
      },
      () => undefined,
    )
    return addrType === 0 ? { type: 'local' } : { type: 'tcp', addrs: this.tcpAddresses }
  }

  /** DATA_CONNECT: to a mover's listen address (three-way) or this session's LOCAL mover. */
  async connect(target: ConnectTarget): Promise<void> {
    this.guard(() => {
      this.machine.checkCanConnect('DATA_CONNECT')
    })
    if (target.type === 'bad') throw illegalArgs(`DATA_CONNECT: ${target.why}`)
    let ep: DataEndpoint
    try {
      ep = target.type === 'local' ? localDataPort(this.session).connect() : await connectTcp(target.addrs)
    } catch (err) {
      if (err instanceof DataConnectionError && err.code === 'DATA_CONN_BAD_ADDRESS') throw illegalArgs(`DATA_CONNECT: ${err.message}`)
      throw new NdmpError(NdmpErr.CONNECT_ERR, `DATA_CONNECT: ${err instanceof Error ? err.message : String(err)}`)
    }
    this.endpoint = ep
    const first = target.type === 'tcp' ? target.addrs[0] : undefined
    this.tcpAddresses = target.type === 'tcp' ? target.addrs : []
    this.machine.connected(first === undefined ? { type: 'local' } : { type: 'tcp', host: first.host, port: first.port })
  }

  private haltNow(reason: DataHaltReason): void {
    if (this.machine.halt(reason)) this.peer.halted(reason)
  }

  private refuse(message: string, err: NdmpError): never {
    this.peer.log('error', message)
    this.session.log.warn({ session: this.session.id }, message)
    throw err
  }

  private checkButype(op: string, butype: string): void {
    if (butype.toLowerCase() !== 'tar') this.refuse(`${op}: backup type "${butype}" is not supported (tar is)`, illegalArgs(`${op}: butype ${butype}`))
  }

  /** The export named by an absolute path (its longest owner), or an ILLEGAL_ARGS with a LOG. */
  private exportFor(op: string, path: string): { exp: NdmpExport; rest: string[] } {
    let split
    try {
      split = splitExportPath(this.session.context.exports(), path)
    } catch (err) {
      if (err instanceof DataEnvError) this.refuse(`${op}: ${err.message}`, illegalArgs(err.message))
      throw err
    }
    if (split === null) this.refuse(`${op}: ${path} is not an export of this server`, illegalArgs(`${op}: unknown filesystem ${path}`))
    return { exp: split.target, rest: split.rest }
  }

  /** DATA_START_BACKUP (butype tar): checks everything, replies, then runs in the background. */
  async startBackup(butype: string, env: Pval[]): Promise<void> {
    this.guard(() => {
      this.machine.checkCanStart('DATA_START_BACKUP')
    })
    this.checkButype('DATA_START_BACKUP', butype)
    let parsed
    try {
      parsed = parseBackupEnv(env)
    } catch (err) {
      if (err instanceof DataEnvError) this.refuse(`DATA_START_BACKUP: ${err.message}`, illegalArgs(err.message))
      throw err
    }
    const { exp, rest } = this.exportFor('DATA_START_BACKUP', parsed.filesystem)
    const ep = this.endpointOrThrow()
    const { format, levels } = await this.deps.backend(this.session.context.stateDir)
    const lease = await this.lease(exp, rest, parsed.filesystem)
    this.machine.start(DataOperation.BACKUP)
    this.sentEnv = env
    this.ourEnv = {}
    const abort = new AbortController()
    this.abort = abort
    this.session.log.info({ session: this.session.id, filesystem: parsed.filesystem, level: parsed.level, live: lease.tree.live }, 'ndmp data: backup started')
    this.running = runBackup({
      env: parsed,
      lease,
      out: { sink: ep, close: () => ep.end() },
      format,
      levels,
      peer: this.peer,
      machine: this.machine,
      signal: abort.signal,
      jobLog: (level, message) => {
        this.session.log[level]({ session: this.session.id, filesystem: parsed.filesystem }, message)
      },
    }).then((r) => {
      this.ourEnv = r.env
      this.haltNow(r.reason)
    })
  }

  /** The tree to read: a snapshot when the export has them (released after), else live. */
  private async lease(exp: NdmpExport, rest: string[], name: string): Promise<TreeLease> {
    let vfs = exp.vfs
    let root = exp.root
    let live = true
    let release = (): Promise<void> => Promise.resolve()
    if (exp.snapshot !== undefined) {
      try {
        const snap = await exp.snapshot()
        vfs = snap.vfs
        root = snap.root
        live = false
        release = () => snap.release()
        if (snap.note !== undefined) this.peer.log('normal', `${name}: ${snap.note}`)
      } catch (err) {
        // No snapshot (no store, store full): the backup still runs, live, and says why.
        this.peer.log('warning', `${name}: snapshot failed (${err instanceof Error ? err.message : String(err)}): reading live`)
      }
    }
    try {
      root = await lookupPath(vfs, root, rest)
    } catch (err) {
      await release()
      if (err instanceof VfsError) this.refuse(`DATA_START_BACKUP: ${name}: ${err.code}`, illegalArgs(`${name}: ${err.code}`))
      throw err
    }
    return { tree: { vfs, root, live, name }, release }
  }

  private endpointOrThrow(): DataEndpoint {
    if (this.endpoint === null) throw new NdmpError(NdmpErr.ILLEGAL_STATE_ERR, 'no data connection')
    return this.endpoint
  }

  /** DATA_START_RECOVER / DATA_START_RECOVER_FILEHIST. */
  async startRecover(mode: 'recover' | 'filehist', butype: string, env: Pval[], nlist: WireName[]): Promise<void> {
    const op = mode === 'recover' ? 'DATA_START_RECOVER' : 'DATA_START_RECOVER_FILEHIST'
    this.guard(() => {
      this.machine.checkCanStart(op)
    })
    this.checkButype(op, butype)
    let parsed
    try {
      parsed = parseRecoverEnv(env)
    } catch (err) {
      if (err instanceof DataEnvError) this.refuse(`${op}: ${err.message}`, illegalArgs(err.message))
      throw err
    }
    let target: RestoreTarget | null = null
    let targetName = parsed.prefix ?? parsed.filesystem ?? ''
    const names: RecoverName[] = []
    try {
      if (mode === 'recover') {
        const resolved = await this.recoverTarget(op, parsed.prefix, parsed.filesystem, nlist)
        target = resolved.target
        targetName = resolved.name
        names.push(...resolved.names)
      } else {
        for (const n of nlist) names.push({ original: n.original, path: components(n.original).join('/'), dest: '', fhInfo: n.fhInfo })
      }
    } catch (err) {
      if (err instanceof DataEnvError) this.refuse(`${op}: ${err.message}`, illegalArgs(err.message))
      if (err instanceof VfsError) this.refuse(`${op}: ${targetName}: ${err.code} ${err.message}`, illegalArgs(`${targetName}: ${err.code}`))
      throw err
    }
    const c = parsed.compress
    if (mode === 'recover' && parsed.direct && c !== null && c !== 'none' && names.length > 0 && names.every((n) => n.fhInfo !== null)) {
      // fh_info is an offset in the plain tar stream (file-history.ts); the tape holds the
      // compressed one, where no such offset can be sought. Refused now, not at a header mismatch.
      this.refuse(`${op}: DIRECT=y on a ${c}-compressed stream (COMPRESS=${c}): its file history offsets are those of the uncompressed stream, so direct access cannot seek in it; recover without DIRECT=y (the stream is read from its start)`, illegalArgs(`${op}: DIRECT=y with COMPRESS=${c}`))
    }
    const ep = this.endpointOrThrow()
    const { format } = await this.deps.backend(this.session.context.stateDir)
    this.machine.start(mode === 'recover' ? DataOperation.RECOVER : DataOperation.RECOVER_FILEHIST)
    this.sentEnv = env
    this.ourEnv = {}
    const abort = new AbortController()
    this.abort = abort
    this.session.log.info({ session: this.session.id, mode, target: targetName, names: names.length }, 'ndmp data: recover started')
    this.running = runRecover({
      mode,
      env: parsed,
      names,
      target,
      targetName,
      input: {
        source: ep,
        // A mover over TCP may be the NDMP SDK's, which serves whole records only; the record
        // size is the one DMAs set (ours, ndmjob's -b default), as the data side is not told it.
        recordSize: ep.kind === 'local' ? null : DEFAULT_RECORD_SIZE,
        close: () => {
          ep.close()
          return Promise.resolve()
        },
      },
      format,
      list: this.deps.list,
      peer: this.peer,
      machine: this.machine,
      signal: abort.signal,
      jobLog: (level, message) => {
        this.session.log[level]({ session: this.session.id, target: targetName }, message)
      },
    }).then((r) => {
      this.ourEnv = r.env
      this.haltNow(r.reason)
    })
  }

  /**
   * Where a recover writes. Empty nlist: everything into PREFIX (made if missing) or the original
   * FILESYSTEM. Else each name to its destination; a destination outside every export is taken
   * relative to FILESYSTEM (ndmjob without -C sends "/a/b" for a file "a/b"). All names must land
   * in one export.
   */
  private async recoverTarget(op: string, prefix: string | null, filesystem: string | null, nlist: WireName[]): Promise<{ target: RestoreTarget; name: string; names: RecoverName[] }> {
    const owner = { uid: 0, gid: 0 }
    if (nlist.length === 0) {
      const where = prefix ?? filesystem
      if (where === null) this.refuse(`${op}: neither PREFIX nor FILESYSTEM says where to restore`, illegalArgs('no restore destination'))
      const { exp, rest } = this.exportFor(op, where)
      const root = await makePath(exp.vfs, exp.root, rest, owner)
      return { target: { kind: 'vfs', vfs: exp.vfs, root, owner }, name: where, names: [] }
    }
    let chosen: NdmpExport | null = null
    const names: RecoverName[] = []
    for (const n of nlist) {
      let split = splitExportPath(this.session.context.exports(), n.destination)
      if (split === null && filesystem !== null) split = splitExportPath(this.session.context.exports(), `${filesystem}/${n.destination}`)
      if (split === null) this.refuse(`${op}: destination ${n.destination} is not in an export of this server`, illegalArgs(`destination ${n.destination}`))
      if (chosen !== null && chosen !== split.target) this.refuse(`${op}: destinations in more than one export (${chosen.path}, ${split.target.path})`, illegalArgs('destinations in several exports'))
      chosen = split.target
      names.push({ original: n.original, path: components(n.original).join('/'), dest: split.rest.join('/'), fhInfo: n.fhInfo })
    }
    if (chosen === null) throw illegalArgs('no destination')
    return { target: { kind: 'vfs', vfs: chosen.vfs, root: chosen.root, owner }, name: chosen.path, names }
  }

  /** DATA_ABORT: the operation (or the listen/connection) ends now, HALTED (ABORTED). */
  doAbort(): void {
    this.guard(() => {
      this.machine.checkCanAbort()
    })
    this.abort?.abort()
    this.listener?.close()
    this.listener = null
    this.endpoint?.close(new DataConnectionError('DATA_CONN_ABORTED', 'DATA_ABORT'))
    this.haltNow(DataHaltReason.ABORTED)
  }

  /** DATA_STOP: HALTED -> IDLE, the connection released. */
  stop(): void {
    this.guard(() => {
      this.machine.stop()
    })
    this.endpoint?.close()
    this.endpoint = null
    this.listener?.close()
    this.listener = null
    this.abort = null
    this.tcpAddresses = []
    this.sentEnv = []
    this.ourEnv = {}
  }

  /** DATA_GET_ENV: what the DMA sent, with what we set over it. */
  env(): Pval[] {
    this.guard(() => {
      this.machine.checkCanGetEnv()
    })
    return resultEnv(this.sentEnv, this.ourEnv)
  }

  /** The session closed: whatever runs stops, the connection goes. */
  async close(): Promise<void> {
    this.abort?.abort()
    this.listener?.close()
    this.endpoint?.close(new DataConnectionError('DATA_CONN_ABORTED', 'the NDMP session closed'))
    await this.running.catch(() => undefined)
  }
}

