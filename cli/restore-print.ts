/*
 * What `tsnfs restore` prints: ls lines, versions, search hits and plans, as plain text or as
 * JSON (bigints as decimal strings, times also as ISO text).
 */
import type { RestorePlan } from '../backup/catalog/plan.ts'
import type { DirEntryAt } from '../backup/catalog/queries.ts'
import type { BackupInfo, FileVersion } from '../backup/catalog/rows.ts'
import { formatNs } from './restore-date.ts'

const TYPE_CHAR: Readonly<Record<string, string>> = { file: '-', dir: 'd', symlink: 'l', block: 'b', char: 'c', socket: 's', fifo: 'p' }

function modeText(v: FileVersion): string {
  const bits = 'rwxrwxrwx'
  let s = TYPE_CHAR[v.type] ?? '?'
  for (let i = 0; i < 9; i++) s += (v.mode & (0o400 >> i)) !== 0 ? bits.charAt(i) : '-'
  return s
}

/** `-rw-r--r-- 1000 1000      11 2026-12-05T14:00:00Z #2 L1 x.txt` */
export function lsLine(e: DirEntryAt): string {
  const v = e.version
  if (v === null) return `?????????? ${''.padStart(21)} ${''.padStart(20)} -- -- ${e.name} (not in the catalog)`
  const name = v.type === 'dir' ? `${e.name}/` : v.type === 'symlink' && v.linkTarget !== null ? `${e.name} -> ${v.linkTarget}` : e.name
  return `${modeText(v)} ${String(v.uid).padStart(5)} ${String(v.gid).padStart(5)} ${v.size.toString().padStart(10)} ${formatNs(v.mtimeNs)} #${v.backupId} L${v.level} ${name}`
}

/** `#2 L1 2026-12-05T14:00:00Z  11 bytes  mtime …  sha256 …  tape T1/1 @1024` */
export function versionLine(v: FileVersion): string {
  const tape = v.tapeLabel === null ? 'no tape' : `tape ${v.tapeLabel}/${v.tapeFile ?? '?'}`
  const sum = v.sha256 === null ? '' : `  sha256 ${v.sha256}`
  return `#${v.backupId} L${v.level} ${formatNs(v.startedNs)}  ${v.type} ${v.size} bytes  mtime ${formatNs(v.mtimeNs)}${sum}  ${tape} @${v.streamOffset}${v.changedDuringBackup ? '  (changed while read)' : ''}`
}

export function searchLine(v: FileVersion): string {
  return `${v.path}  #${v.backupId} L${v.level} ${formatNs(v.startedNs)}  ${v.size} bytes`
}

export function backupLine(b: BackupInfo): string {
  const tapes = b.tapes.map(t => `${t.label}/${t.fileNumber}`).join(',')
  return `backup #${b.id} level ${b.level} of ${b.filesystem} started ${formatNs(b.startedNs)}${tapes === '' ? '' : ` on ${tapes}`}`
}

export function planText(plan: RestorePlan): string {
  const lines = [`restore of ${plan.filesystem} as at ${formatNs(plan.atNs)}: ${plan.full ? 'the whole chain' : plan.selection.join(' ')}`]
  for (const s of plan.steps) {
    lines.push(s.whole ? `${backupLine(s.backup)}: whole stream` : `${backupLine(s.backup)}: ${s.files.length} object(s)`)
    for (const f of s.files) lines.push(`  @${f.streamOffset}-${f.endOffset ?? 'end'} ${f.tapeLabel ?? '?'}/${f.tapeFile ?? '?'} ${f.type} ${f.size} ${f.path}`)
  }
  for (const m of plan.missing) lines.push(`missing from the catalog: ${m}`)
  return `${lines.join('\n')}\n`
}

/** JSON.stringify with bigints as strings and each *Ns time doubled as ISO text. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, function (this: Record<string, unknown>, key: string, v: unknown): unknown {
    if (typeof v === 'bigint') return key.endsWith('Ns') ? { ns: v.toString(), iso: formatNs(v) } : v.toString()
    return v
  })
}
