/*
 * Retention: a pool keeps the newest `keepChains` chains of each export. A chain is a level-0
 * backup and every later backup of the export until the next level 0 (dump's rule makes each
 * of them depend on that full). Backups of older chains, and failed or aborted ones, expire;
 * a tape whose backups have all expired can be recycled (written over).
 */
import type { PoolBackup, PoolIndex } from './index-file.ts'

/** The jobs whose backups have expired. */
export function expiredBackups(index: PoolIndex): Set<string> {
  const out = new Set<string>()
  const byExport = new Map<string, PoolBackup[]>()
  for (const b of index.backups) {
    if (b.status === 'failed' || b.status === 'aborted') out.add(b.job)
    else if (b.status === 'done') byExport.set(b.export, [...(byExport.get(b.export) ?? []), b])
  }
  for (const list of byExport.values()) {
    list.sort((a, b) => a.startedAt.localeCompare(b.startedAt))
    const fulls = list.flatMap((b, i) => (b.level === 0 ? [i] : []))
    // Higher levels before the first full kept (their own full recycled already) restore nothing: they go too.
    if (fulls.length === 0) continue
    const firstKept = fulls[Math.max(0, fulls.length - index.keepChains)] ?? 0
    for (const b of list.slice(0, firstKept)) out.add(b.job)
  }
  return out
}

/** Labels of tapes that may be written over: those of failed or aborted backups first, then oldest-written first. */
export function recyclableTapes(index: PoolIndex): string[] {
  const expired = expiredBackups(index)
  const holders = new Map<string, string[]>()
  for (const b of index.backups) for (const l of b.tapes) holders.set(l, [...(holders.get(l) ?? []), b.job])
  const failed = new Set(index.backups.filter((b) => b.status === 'failed' || b.status === 'aborted').map((b) => b.job))
  const order = new Map(index.backups.flatMap((b, i) => b.tapes.map((l) => [l, i] as const)))
  const key = (label: string): number => ((holders.get(label) ?? []).every((j) => failed.has(j)) ? 0 : index.backups.length) + (order.get(label) ?? -1)
  return index.tapes
    .filter((t) => (t.state === 'full' || t.state === 'used') && (holders.get(t.label) ?? []).every((j) => expired.has(j)))
    .sort((a, b) => key(a.label) - key(b.label))
    .map((t) => t.label)
}
