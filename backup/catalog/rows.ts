/*
 * What the catalog hands out, and the mapping from its rows (integers come back as bigint: the
 * database is opened with safe integers, since times in ns and offsets pass 2^53).
 */
import type { FileType, Timespec } from '../../vfs/types.ts'
import { joinPath } from './paths.ts'

export type BackupStatus = 'running' | 'done' | 'failed' | 'aborted'

/** One tape file a backup's stream went to; the stream's bytes from streamOffset on are there. */
export interface TapeFile {
  label: string
  fileNumber: number
  streamOffset: bigint
}

export interface BackupInfo {
  id: number
  filesystem: string
  level: number
  /** The lower-level backup this one is relative to; null when it is full. */
  baseId: number | null
  full: boolean
  startedNs: bigint
  endedNs: bigint | null
  status: BackupStatus
  host: string
  agent: string
  jobId: string | null
  bytes: bigint
  files: number
  message: string | null
  tapes: TapeFile[]
}

/** One object as one backup recorded it. */
export interface FileVersion {
  backupId: number
  level: number
  /** When its backup started: the version is the object as it was then. */
  startedNs: bigint
  path: string
  type: FileType
  size: bigint
  mode: number
  uid: number
  gid: number
  atimeNs: bigint
  mtimeNs: bigint
  ctimeNs: bigint
  fileid: bigint
  sha256: string | null
  linkTarget: string | null
  hardLinkOf: string | null
  tapeLabel: string | null
  tapeFile: number | null
  /** Where the object's first header starts in its backup's (uncompressed) stream. */
  streamOffset: bigint
  changedDuringBackup: boolean
}

export function toNs(t: Timespec): bigint {
  return BigInt(t.sec) * 1_000_000_000n + BigInt(t.nsec)
}

export type Row = Record<string, unknown>

function big(v: unknown): bigint {
  return typeof v === 'bigint' ? v : BigInt(v as number)
}
function num(v: unknown): number {
  return Number(v)
}
function str(v: unknown): string {
  return v as string
}
function strOrNull(v: unknown): string | null {
  return v === null ? null : (v as string)
}

export function backupOf(r: Row, tapes: TapeFile[]): BackupInfo {
  return {
    id: num(r.id),
    filesystem: str(r.filesystem),
    level: num(r.level),
    baseId: r.base_id === null ? null : num(r.base_id),
    full: r.full !== 0n,
    startedNs: big(r.started_ns),
    endedNs: r.ended_ns === null ? null : big(r.ended_ns),
    status: r.status as BackupStatus,
    host: str(r.host),
    agent: str(r.agent),
    jobId: strOrNull(r.job_id),
    bytes: big(r.bytes),
    files: num(r.files),
    message: strOrNull(r.message),
    tapes,
  }
}

export function tapeOf(r: Row): TapeFile {
  return { label: str(r.label), fileNumber: num(r.file_number), streamOffset: big(r.stream_offset) }
}

/** A files row joined with its backup's level and started_ns. */
export function versionOf(r: Row): FileVersion {
  return {
    backupId: num(r.backup_id),
    level: num(r.level),
    startedNs: big(r.started_ns),
    path: joinPath(str(r.dir), str(r.name)),
    type: r.type as FileType,
    size: big(r.size),
    mode: num(r.mode),
    uid: num(r.uid),
    gid: num(r.gid),
    atimeNs: big(r.atime_ns),
    mtimeNs: big(r.mtime_ns),
    ctimeNs: big(r.ctime_ns),
    fileid: big(r.fileid),
    sha256: strOrNull(r.sha256),
    linkTarget: strOrNull(r.link_target),
    hardLinkOf: strOrNull(r.hard_link_of),
    tapeLabel: strOrNull(r.tape_label),
    tapeFile: r.tape_file === null ? null : num(r.tape_file),
    streamOffset: big(r.stream_offset),
    changedDuringBackup: r.changed !== 0n,
  }
}
