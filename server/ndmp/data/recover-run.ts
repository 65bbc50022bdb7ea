/*
 * One DATA_START_RECOVER or DATA_START_RECOVER_FILEHIST, from the accepted request to
 * NOTIFY_DATA_HALTED. A recover restores the stream (everything, or the nlist's paths, each to
 * its destination) and posts one LOG_FILE per nlist entry (ndmjob counts them: fewer OKs than
 * names fails its job) or, for a full restore, one per restored object. RECOVER_FILEHIST reads the
 * stream and sends its file history only. A corrupt or truncated stream halts INTERNAL_ERROR
 * with a LOG naming the byte offset; everything before it stays restored.
 * DIRECT=y with an fh_info for every name is a direct access restore (direct-access.ts): only the
 * chosen members' records are asked for, in offset order: exact ranges from our own mover (LOCAL),
 * whole records of the default record size from a mover over TCP, which may be another's. Where
 * the DMA did not say COMPRESS (our backups hand it back in their env, but a DMA may keep only what
 * it sent), the stream's start is asked for first (one block, or one record from a mover over
 * TCP): a gzip or brotli stream (backup/compress.ts sniffStreamStart) is then read whole from
 * there, since the offsets are the plain stream's. COMPRESS=none skips that look.
 */
import { replay, sniffStreamStart } from '../../../backup/compress.ts'
import type { BackupFormat, ByteSource, FileHistoryEntry, LogLevel, RestoreSelection, RestoreTarget } from '../../../backup/types.ts'
import { BackupFormatError } from '../../../backup/types.ts'
import { haltReasonOf, messageOf } from './backup-run.ts'
import { DirectAccessSource, LENGTH_INFINITY, readStreamStart } from './direct-access.ts'
import type { RecoverEnv } from './env.ts'
import { FileHistoryBatcher } from './file-history.ts'
import type { DataPeer, PeerLogType } from './peer.ts'
import { RecoveryStatus } from './peer.ts'
import { DataHaltReason } from './state.ts'
import type { DataMachine } from './state.ts'

/** One nlist entry, resolved: `path` in the backup, `dest` below the target's root. */
export interface RecoverName {
  /** As the DMA sent it (LOG_FILE names it so). */
  original: string
  path: string
  dest: string
  fhInfo: bigint | null
}

/** The data connection's reading end; close() drops it (the mover sees the connection close). */
export interface DataIn {
  source: ByteSource
  /**
   * Direct access reads: null asks exact ranges (the mover is this session's own, LOCAL); a size
   * asks whole records of it (a mover elsewhere, which may serve nothing else: range-input.ts).
   */
  recordSize: number | null
  close(): Promise<void>
}

/** Reads a stream for its file history only (RECOVER_FILEHIST): no object is written anywhere. */
export type ListStream = (source: ByteSource, sourceName: string, onFile: (e: FileHistoryEntry) => void, signal: AbortSignal) => Promise<void>

export interface RecoverRunInput {
  mode: 'recover' | 'filehist'
  env: RecoverEnv
  /** Empty: everything. */
  names: RecoverName[]
  target: RestoreTarget | null
  /** For messages: the export (and directory) restored into. */
  targetName: string
  input: DataIn
  format: BackupFormat
  list: ListStream
  peer: DataPeer
  machine: DataMachine
  signal: AbortSignal
  jobLog: (level: LogLevel, message: string) => void
}

export interface RecoverRunResult {
  reason: DataHaltReason
  restored: number
  env: Record<string, string>
  /** A direct access restore: how many reads it asked for and the bytes they brought. */
  direct: { requests: number; bytes: bigint } | null
}

export { LENGTH_INFINITY }

const PEER_TYPE: Record<LogLevel, PeerLogType> = { info: 'normal', warn: 'warning', error: 'error' }

/** True when `path` is `sel` or below it ('' selects everything). */
function within(path: string, sel: string): boolean {
  return sel === '' || path === sel || path.startsWith(`${sel}/`)
}

export async function runRecover(input: RecoverRunInput): Promise<RecoverRunResult> {
  const { env, names, peer, machine, signal } = input
  const say = (level: LogLevel, message: string): void => {
    peer.log(PEER_TYPE[level], message)
    input.jobLog(level, message)
  }
  if (env.ignored.length > 0) say('info', `env ignored: ${env.ignored.join(', ')}`)
  let bytes = 0n
  const source: ByteSource = {
    async read(max: number): Promise<Buffer | null> {
      const chunk = await input.input.source.read(max)
      if (chunk !== null) {
        bytes += BigInt(chunk.length)
        machine.progress(bytes, null)
      }
      return chunk
    },
  }
  const found = new Array<boolean>(names.length).fill(false)
  let restored = 0
  let reason: DataHaltReason = DataHaltReason.SUCCESSFUL
  const streamName = `data stream of ${env.filesystem ?? input.targetName}`
  // Direct access needs every name's offset; a list with one unknown reads the stream from its start.
  const direct = input.mode === 'recover' && env.direct && names.length > 0 && names.every((n) => n.fhInfo !== null)
  if (env.direct && !direct) say('info', 'DIRECT=y: not every name has an fh_info (or nothing was chosen): the stream is read from its start')
  const requester = {
    dataRead: (offset: bigint, length: bigint): void => {
      peer.dataRead(offset, length)
      machine.reading(offset, length)
    },
  }
  let dar: DirectAccessSource | null = null
  let stream: ByteSource = source
  try {
    // Where the DMA did not say COMPRESS, the stream's first block says it: fh_info offsets are
    // the plain stream's, and seeking by them in a compressed one reads noise or runs off the tape.
    // From a mover over TCP, a whole record (the NDMP SDK's mover serves nothing shorter, range-input.ts).
    const recordSize = input.input.recordSize
    const start = direct && env.compress === null ? await readStreamStart(source, requester, recordSize ?? undefined) : null
    const kind = start === null ? null : await sniffStreamStart(start)
    if (start !== null && (kind === 'gzip' || kind === 'brotli')) {
      say('info', `DIRECT=y: the stream is ${kind}-compressed (${kind === 'gzip' ? 'its magic 1f 8b' : 'its first block inflates as brotli to a tar header'}; the DMA did not say COMPRESS=): its file history offsets are those of the uncompressed stream, so it is read from its start`)
      requester.dataRead(BigInt(start.length), LENGTH_INFINITY)
      stream = replay(start, source)
    } else if (direct) {
      if (kind === 'unknown') say('warn', 'DIRECT=y: the stream\'s first block is neither a tar header nor the start of a gzip or brotli stream: direct access as asked')
      dar = new DirectAccessSource(source, requester, names.map((n) => ({ offset: n.fhInfo ?? 0n })), streamName, recordSize)
      if (start !== null) {
        // The look at the first block was a read of this restore too (the LOG's count says so).
        dar.stats.requests++
        dar.stats.bytes += BigInt(start.length)
      }
      stream = dar
      say('info', `direct access restore of ${names.length} name(s)${recordSize === null ? '' : `, in whole records of ${recordSize} bytes`}`)
    } else {
      // The mover sends nothing until asked (draft §3.8.9 MOVER_READ): ask for the whole stream.
      requester.dataRead(0n, LENGTH_INFINITY)
    }
    if (input.mode === 'filehist') {
      const fh = new FileHistoryBatcher(env.histForm, (b) => peer.fileHistory(b))
      await input.list(source, streamName, (e) => {
        if (names.length === 0 || names.some((n) => within(e.path, n.path))) fh.add(e)
      }, signal)
      fh.flush()
      await fh.drain()
      say('info', `file history of ${fh.entries} objects sent`)
    } else {
      if (input.target === null) throw new Error('no restore target')
      const select: RestoreSelection[] | undefined = names.length === 0 ? undefined : names.map((n) => ({ path: n.path, dest: n.dest }))
      const summary = await input.format.readBackup(stream, streamName, input.target, {
        ...(select === undefined ? {} : { select }),
        overwrite: env.overwrite,
        applyDeletions: select === undefined,
        onFile: (e) => {
          restored++
          if (names.length === 0) peer.logFile(e.path === '' ? '/' : e.path, RecoveryStatus.SUCCESSFUL)
          else names.forEach((n, i) => {
            if (within(e.path, n.path)) found[i] = true
          })
        },
        onLog: say,
        signal,
      })
      if (summary.skipped.length > 0) say('warn', `${summary.skipped.length} existing object(s) kept (OVERWRITE=y replaces them): ${summary.skipped.slice(0, 20).join(', ')}`)
      say('info', `restore into ${input.targetName} done: ${summary.files} files, ${summary.dirs} directories, ${summary.bytes} bytes`)
      if (dar !== null) say('info', `direct access: ${dar.stats.requests} read(s), ${dar.stats.bytes} bytes of the stream`)
    }
  } catch (err) {
    reason = haltReasonOf(err, signal)
    if (reason === DataHaltReason.ABORTED) say('warn', 'recover aborted')
    else if (err instanceof BackupFormatError) say('error', `recover stopped: ${err.message}; what came before byte ${err.offset} is restored`)
    else say('error', `recover failed: ${messageOf(err)}`)
  }
  if (input.mode === 'recover') {
    names.forEach((n, i) => {
      peer.logFile(n.original, found[i] === true ? RecoveryStatus.SUCCESSFUL : RecoveryStatus.FAILED_NOT_FOUND)
    })
  }
  await input.input.close().catch(() => undefined)
  return { reason, restored, env: { TYPE: 'tar', ...(env.filesystem === null ? {} : { FILESYSTEM: env.filesystem }) }, direct: dar === null ? null : { ...dar.stats } }
}
