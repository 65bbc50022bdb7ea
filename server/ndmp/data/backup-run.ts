/*
 * One DATA_START_BACKUP, from the accepted request to NOTIFY_DATA_HALTED: the tree (a snapshot
 * when the export has one, else live and said so), the level's base, the stream into the data
 * connection, file history out as it goes, the level recorded when UPDATE=y, the connection
 * closed (the mover halts CONNECT_CLOSED: ndmjob counts that and DATA SUCCESSFUL as "OKAY").
 */
import type { BackupFormat, BackupSummary, BackupTree, ByteSink, FileHistoryEntry, LevelBase, LogLevel } from '../../../backup/types.ts'
import { BackupFormatError } from '../../../backup/types.ts'
import type { BackupEnv } from './env.ts'
import { FileHistoryBatcher } from './file-history.ts'
import type { DataPeer, PeerLogType } from './peer.ts'
import { DataHaltReason } from './state.ts'
import type { DataMachine } from './state.ts'

/** The tree to read and how to let it go (a snapshot is deleted after the backup). */
export interface TreeLease {
  tree: BackupTree
  release(): Promise<void>
}

/** The level store as this service needs it (backup/levels.ts provides one). */
export interface LevelKeeper {
  base(filesystem: string, level: number): Promise<LevelBase | null>
  record(filesystem: string, summary: BackupSummary): Promise<void>
}

/** The data connection's writing end; close() ends the stream (the peer sees EOF). */
export interface DataOut {
  sink: ByteSink
  close(): Promise<void>
}

export interface BackupRunInput {
  env: BackupEnv
  lease: TreeLease
  out: DataOut
  format: BackupFormat
  levels: LevelKeeper
  peer: DataPeer
  machine: DataMachine
  signal: AbortSignal
  /** Our own job log (the server's logger): the same lines the DMA gets. */
  jobLog: (level: LogLevel, message: string) => void
}

export interface BackupRunResult {
  reason: DataHaltReason
  summary: BackupSummary | null
  /** Values DATA_GET_ENV adds to what the DMA sent. */
  env: Record<string, string>
}

const PEER_TYPE: Record<LogLevel, PeerLogType> = { info: 'normal', warn: 'warning', error: 'error' }

export async function runBackup(input: BackupRunInput): Promise<BackupRunResult> {
  const { env, lease, out, format, levels, peer, machine, signal } = input
  const say = (level: LogLevel, message: string): void => {
    peer.log(PEER_TYPE[level], message)
    input.jobLog(level, message)
  }
  const ourEnv: Record<string, string> = {
    TYPE: 'tar',
    FILESYSTEM: env.filesystem,
    LEVEL: String(env.level),
    HIST: env.hist ? 'y' : 'n',
    UPDATE: env.update ? 'y' : 'n',
    DIRECT: env.direct ? 'y' : 'n',
    SNAPSHOT: lease.tree.live ? 'n' : 'y',
    COMPRESS: env.compress ?? 'none',
  }
  if (env.hist) ourEnv['HIST_TYPE'] = env.histForm
  if (env.ignored.length > 0) say('info', `env ignored: ${env.ignored.join(', ')}`)
  // A live read is said by the format itself (its onLog: "read live (no snapshot)").
  if (!lease.tree.live) say('info', `${env.filesystem}: reading a snapshot taken for this backup`)
  // File history offsets stay those of the uncompressed stream: a direct access restore of a compressed backup reads it from its start.
  if (env.compress !== null) say('info', `${env.filesystem}: the stream is ${env.compress}-compressed (COMPRESS=${env.compress})`)

  const fh = env.hist ? new FileHistoryBatcher(env.histForm, (b) => peer.fileHistory(b), env.level > 0) : null
  let bytes = 0n
  const sink: ByteSink = {
    async write(chunk: Buffer): Promise<void> {
      // File history is the slower consumer: hold the stream until its posts are queued.
      if (fh !== null) {
        fh.flush()
        await fh.drain()
      }
      await out.sink.write(chunk)
      bytes += BigInt(chunk.length)
      machine.progress(bytes, null)
    },
  }
  let reason: DataHaltReason = DataHaltReason.SUCCESSFUL
  let summary: BackupSummary | null = null
  try {
    const base = env.level === 0 ? null : await levels.base(env.filesystem, env.level)
    if (env.level > 0) {
      say('info', base === null ? `level ${env.level}: no backup of a lower level is recorded: this one is full` : `level ${env.level}: changes since the level ${base.level} backup`)
      if (base !== null) ourEnv['BASE_LEVEL'] = String(base.level)
    }
    summary = await format.writeBackup(lease.tree, sink, {
      level: env.level,
      base,
      exclude: env.exclude,
      compress: env.compress,
      onFile: (e: FileHistoryEntry) => {
        fh?.add(e)
      },
      onLog: say,
      signal,
    })
    if (fh !== null) {
      fh.addListing(summary.listing)
      fh.flush()
      await fh.drain()
    }
    ourEnv['BACKUP_DATE'] = String(summary.startedAt.sec)
    ourEnv['FILES'] = String(summary.files + summary.dirs)
    ourEnv['BYTES'] = String(summary.bytes)
    if (summary.changed.length > 0) say('warn', `${summary.changed.length} file(s) changed while read: ${summary.changed.slice(0, 20).join(', ')}${summary.changed.length > 20 ? ', ...' : ''}`)
    if (env.update) {
      await levels.record(env.filesystem, summary)
      say('info', `level ${env.level} of ${env.filesystem} recorded`)
    }
    say('info', `backup of ${env.filesystem} done: ${summary.files} files, ${summary.dirs} directories, ${summary.bytes} bytes`)
  } catch (err) {
    reason = haltReasonOf(err, signal)
    if (reason !== DataHaltReason.ABORTED) say('error', `backup of ${env.filesystem} failed: ${messageOf(err)}`)
    else say('warn', `backup of ${env.filesystem} aborted`)
  } finally {
    await lease.release().catch((err: unknown) => {
      say('warn', `releasing the snapshot of ${env.filesystem}: ${messageOf(err)}`)
    })
  }
  try {
    await out.close()
  } catch (err) {
    if (reason === DataHaltReason.SUCCESSFUL) {
      reason = DataHaltReason.CONNECT_ERROR
      say('error', `closing the data connection: ${messageOf(err)}`)
    }
  }
  return { reason, summary, env: ourEnv }
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/** Abort wins; a broken data connection is CONNECT_ERROR; everything else INTERNAL_ERROR. */
export function haltReasonOf(err: unknown, signal: AbortSignal): DataHaltReason {
  if (signal.aborted) return DataHaltReason.ABORTED
  if (err instanceof BackupFormatError) return DataHaltReason.INTERNAL_ERROR
  const code = (err as { code?: unknown } | null)?.code
  if (code === 'EPIPE' || code === 'ECONNRESET' || (typeof code === 'string' && code.startsWith('DATA_CONN_'))) {
    return DataHaltReason.CONNECT_ERROR
  }
  return DataHaltReason.INTERNAL_ERROR
}
