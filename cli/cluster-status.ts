/*
 * `tsnfs cluster status`: what one cluster database says about itself —
 * format, where the data lives, the servers using it (sessions, with the age
 * of their last heartbeat) and the counters. Plain SQL over the shared tables
 * (vfs/cluster/schema.ts), one read-only transaction, so it shows one moment.
 */
import type { SqlDb } from '../vfs/cluster/sql.ts'
import { COUNTER, SETTING } from '../vfs/cluster/schema.ts'

export interface ClusterSession {
  sid: string
  host: string
  pid: number
  startedMs: number
  heartbeatMs: number
  info: string
}

export interface ClusterStatus {
  format: string | null
  data: string | null
  created: string | null
  sessions: ClusterSession[]
  counters: Record<string, string>
  /** The database's clock when read (heartbeats are compared with it, not with this host's clock). */
  nowMs: number
}

/** Sessions listed at most (a status that prints thousands helps no one; the count is exact). */
const MAX_SESSIONS = 1000

export async function readClusterStatus(db: SqlDb): Promise<ClusterStatus & { sessionCount: number }> {
  return db.transaction(async (tx) => {
    const settings = new Map<string, string>()
    for (const r of (await tx.query('SELECT name, value FROM tsnfs_setting')).rows) settings.set(String(r['name']), String(r['value']))
    const counters: Record<string, string> = {}
    for (const r of (await tx.query('SELECT name, value FROM tsnfs_counter ORDER BY name')).rows) counters[String(r['name'])] = String(r['value'])
    const now = (await tx.query('SELECT CAST(EXTRACT(EPOCH FROM now()) * 1000 AS BIGINT) AS now')).rows[0]?.['now']
    const count = (await tx.query('SELECT count(*) AS n FROM tsnfs_session')).rows[0]?.['n']
    const rows = (await tx.query(`SELECT sid, host, pid, started, heartbeat, info FROM tsnfs_session ORDER BY sid LIMIT ${MAX_SESSIONS}`)).rows
    return {
      format: settings.get(SETTING.format) ?? null,
      data: settings.get(SETTING.data) ?? null,
      created: settings.get(SETTING.created) ?? null,
      counters,
      nowMs: Number(now),
      sessionCount: Number(count),
      sessions: rows.map((r) => ({
        sid: String(r['sid']),
        host: String(r['host']),
        pid: Number(r['pid']),
        startedMs: Number(r['started']),
        heartbeatMs: Number(r['heartbeat']),
        info: String(r['info']),
      })),
    }
  }, { readOnly: true, label: 'status' })
}

export function formatClusterStatus(s: ClusterStatus & { sessionCount: number }, where: { meta: string; data: string; store: string }): string {
  const lines = [
    `cluster database: ${where.meta}`,
    `format: ${s.format ?? '(not initialized: run tsnfs cluster init)'}`,
    `data: ${s.data ?? '(unset)'}${s.data !== null && s.data !== where.data ? ` (this command was given ${where.data})` : ''}`,
    `object store: ${where.store}`,
  ]
  const created = Number(s.created)
  if (s.created !== null) lines.push(`created: ${Number.isFinite(created) && created > 0 ? new Date(created).toISOString() : s.created}`)
  lines.push(`inodes: ${s.counters[COUNTER.usedInodes] ?? '?'}`, `bytes: ${s.counters[COUNTER.usedBytes] ?? '?'}`)
  lines.push(`servers: ${String(s.sessionCount)}`)
  for (const x of s.sessions) {
    const age = Math.max(0, (s.nowMs - x.heartbeatMs) / 1000)
    const up = Math.max(0, (s.nowMs - x.startedMs) / 1000)
    lines.push(`  session ${x.sid}: ${x.host} pid ${String(x.pid)}, up ${up.toFixed(0)} s, heartbeat ${age.toFixed(1)} s ago${x.info === '' ? '' : `, ${x.info}`}`)
  }
  if (s.sessionCount > s.sessions.length) lines.push(`  (${String(s.sessionCount - s.sessions.length)} more)`)
  return lines.join('\n') + '\n'
}
