/*
 * tsnfs cluster init|status|gc|fsck: the tools of the cluster backend
 * (issue 17 §7), run against the database and object store directly — no
 * server needs to be up. Passwords come from the credentials file or the
 * environment (PGPASSWORD, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), never
 * from the command line, where every user of the host can read them.
 * Exit 0 on success, 1 on failure (fsck: problems found), 2 on a usage error.
 */
import { parseArgs } from 'node:util'
import type { ObjectStore } from '../vfs/cluster/object-store.ts'
import type { SqlDb } from '../vfs/cluster/sql.ts'
import { formatClusterStatus, readClusterStatus } from './cluster-status.ts'
import { wantsHelp } from './help.ts'

export const CLUSTER_USAGE = `usage: tsnfs cluster init|status|gc|fsck --meta URL --data URL|postgres [--credentials FILE]
  init [--small-blocks BYTES]
          create the tables, settings (format, handle key, data location), the root directory
          and the bucket (or the block table for --data postgres); run again: changes nothing.
          --small-blocks (data in S3; e.g. 64k, at most 1m): blocks of at most BYTES are rows
          in the database, not objects in the bucket; fixed once set (every server routes by it)
  status  format, data location, the servers using the file system (sessions, heartbeat age),
          inode and byte counters
  gc [--dry-run] [--min-age DURATION (1h)]
          delete stored blocks no slice references (older than --min-age: a server may be
          uploading one right now), and slice records with no references
  fsck [--max-problems N (10000)] [--max-slices N (1000000)]
          check references both ways (every referenced block stored with its length, every
          stored block referenced, reference counts) and the inode and byte counters; exit 1
          when it finds problems. Prints the passes it made (more than --max-slices slices
          are checked in passes) and how many problems it found past --max-problems
  --meta postgres://user@host:port/database[?sslmode=...]   the metadata database (no password)
  --data postgres | s3://bucket?endpoint=http://host:port&region=R   where file data lives
  --credentials FILE   meta_password=, s3_access_key=, s3_secret_key= lines; else PGPASSWORD,
                       AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from the environment
  --json               status, gc and fsck print one JSON object
`

class UsageError extends Error {}

/** `90`, `90s`, `10m`, `1h`, `2d` → milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d{1,9})(ms|s|m|h|d)?$/.exec(text)
  if (m === null) throw new UsageError(`not a duration: "${text}" (e.g. 90s, 10m, 1h)`)
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? 's'] ?? 1000
  return Number(m[1]) * unit
}

interface Parsed {
  sub: 'init' | 'status' | 'gc' | 'fsck'
  meta: string
  data: string
  credentials?: string
  dryRun: boolean
  minAgeMs: number
  smallBlocks?: number
  json: boolean
  maxProblems?: number
  maxSlices?: number
}

/** A positive count option (`--max-problems 10`). */
function count(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined
  if (!/^[1-9]\d{0,8}$/.test(text)) throw new UsageError(`--${name} takes a count from 1 to 999999999, not "${text}"`)
  return Number(text)
}

/** `--small-blocks BYTES` (init, data in S3): `65536`, `64k`, `1m`; 0 keeps every block in the bucket. */
function smallBlockOption(text: string | undefined, sub: string | undefined, data: string): number | undefined {
  if (text === undefined) return undefined
  if (sub !== 'init') throw new UsageError('--small-blocks is for init (the threshold is fixed when the file system is made)')
  if (data === 'postgres') throw new UsageError('--small-blocks needs --data s3://…: with --data postgres every block is in the database already')
  const m = /^(\d{1,7})([km]?)$/i.exec(text)
  const n = m === null ? NaN : Number(m[1]) * ({ '': 1, k: 1024, m: 1024 * 1024 }[(m[2] ?? '').toLowerCase()] ?? NaN)
  if (!(n >= 0 && n <= 1024 * 1024)) throw new UsageError(`--small-blocks takes 0 to 1m bytes (e.g. 64k), not "${text}"`)
  return n
}

function parse(argv: string[]): Parsed {
  let out
  try {
    out = parseArgs({
      args: argv,
      options: {
        meta: { type: 'string' },
        data: { type: 'string' },
        credentials: { type: 'string' },
        'dry-run': { type: 'boolean', default: false },
        'min-age': { type: 'string' },
        json: { type: 'boolean', default: false },
        'max-problems': { type: 'string' },
        'max-slices': { type: 'string' },
        'small-blocks': { type: 'string' },
      },
      allowPositionals: true,
    })
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  const { values, positionals } = out
  const [sub] = positionals
  if (positionals.length !== 1 || (sub !== 'init' && sub !== 'status' && sub !== 'gc' && sub !== 'fsck')) throw new UsageError('expected one of init, status, gc, fsck')
  if (values.meta === undefined) throw new UsageError('--meta postgres://user@host:port/database is required')
  if (values.data === undefined) throw new UsageError('--data postgres or --data s3://bucket?endpoint=URL is required')
  if (sub !== 'gc' && (values['dry-run'] || values['min-age'] !== undefined)) throw new UsageError('--dry-run and --min-age are for gc')
  if (sub !== 'fsck' && (values['max-problems'] !== undefined || values['max-slices'] !== undefined)) throw new UsageError('--max-problems and --max-slices are for fsck')
  const smallBlocks = smallBlockOption(values['small-blocks'], sub, values.data)
  const maxProblems = count('max-problems', values['max-problems'])
  const maxSlices = count('max-slices', values['max-slices'])
  return {
    sub,
    meta: values.meta,
    data: values.data,
    ...(values.credentials === undefined ? {} : { credentials: values.credentials }),
    dryRun: values['dry-run'],
    minAgeMs: parseDuration(values['min-age'] ?? '1h'),
    ...(smallBlocks === undefined ? {} : { smallBlocks }),
    json: values.json,
    ...(maxProblems === undefined ? {} : { maxProblems }),
    ...(maxSlices === undefined ? {} : { maxSlices }),
  }
}

export async function cluster(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    process.stdout.write(CLUSTER_USAGE)
    return 0
  }
  let p: Parsed
  try {
    p = parse(argv)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    process.stderr.write(`tsnfs cluster: ${err.message}\n${CLUSTER_USAGE}`)
    return 2
  }
  let stores: { db: SqlDb; store: ObjectStore; describe: string; close(): Promise<void> }
  try {
    // Loaded here, not at the top: --help and usage errors need no database or S3 client.
    const { parseClusterConfig } = await import('../vfs/cluster/clients/config.ts')
    const { openClusterStores } = await import('../vfs/cluster/clients/open.ts')
    const cfg = parseClusterConfig({ meta: p.meta, data: p.data, credentials: p.credentials })
    stores = await openClusterStores(cfg, process.env, {
      warn: (msg) => process.stderr.write(`tsnfs cluster: ${msg}\n`),
      ...(p.smallBlocks === undefined ? {} : { smallBlocks: p.smallBlocks }),
    })
  } catch (err) {
    process.stderr.write(`tsnfs cluster: ${(err as Error).message}\n`)
    return 1
  }
  try {
    return await run(p, stores.db, stores.store)
  } catch (err) {
    process.stderr.write(`tsnfs cluster ${p.sub}: ${(err as Error).message}\n`)
    return 1
  } finally {
    await stores.close().catch(() => undefined)
  }
}

async function run(p: Parsed, db: SqlDb, store: ObjectStore): Promise<number> {
  const print = (text: string): void => {
    process.stdout.write(text)
  }
  switch (p.sub) {
    case 'init': {
      // The bucket first: a database that names a data location which does not exist would serve EIO.
      await store.init()
      const { initCluster } = await import('../vfs/cluster/init.ts')
      await initCluster(db, { data: p.data, ...(p.smallBlocks === undefined ? {} : { smallBlocks: p.smallBlocks }) })
      print(`initialized: metadata in ${p.meta}, data in ${store.describe()}\n`)
      return 0
    }
    case 'status': {
      const s = await readClusterStatus(db)
      print(p.json ? toJson(s) + '\n' : formatClusterStatus(s, { meta: p.meta, data: p.data, store: store.describe() }))
      return 0
    }
    case 'gc': {
      const { collectGarbage } = await import('../vfs/cluster/data/gc.ts')
      const r = await collectGarbage(db, store, { minAgeMs: p.minAgeMs, dryRun: p.dryRun })
      print(p.json ? toJson(r) + '\n' : `gc${p.dryRun ? ' (dry run, nothing deleted)' : ''}: ${describeCounts(r)}\n`)
      return 0
    }
    case 'fsck': {
      const { checkReferences } = await import('../vfs/cluster/data/fsck.ts')
      const r = await checkReferences(db, store, {
        ...(p.maxProblems === undefined ? {} : { maxProblems: p.maxProblems }),
        ...(p.maxSlices === undefined ? {} : { maxSlices: p.maxSlices }),
      })
      if (p.json) print(toJson(r) + '\n')
      else {
        for (const x of r.problems) print(`${x.kind}: ${x.message}\n`)
        // The list is capped: say how many more there were, so a capped list is not read as the whole.
        if (r.unlisted > 0) print(`(${String(r.unlisted)} more problem(s) not listed: --max-problems ${String(r.problems.length)})\n`)
        const found = r.problems.length + r.unlisted
        print(`fsck: ${found === 0 ? 'clean' : `${String(found)} problem(s)`} (${String(r.chunks)} chunks, ${String(r.slices)} slices, ${String(r.objects)} objects, ${String(r.passes)} pass${r.passes === 1 ? '' : 'es'})\n`)
      }
      return r.problems.length + r.unlisted === 0 ? 0 : 1
    }
  }
}

/** The numeric fields of a report, "name 12, other 3" (the report's own names, so new counters show up). */
function describeCounts(r: object): string {
  return Object.entries(r).filter(([, v]) => typeof v === 'number' || typeof v === 'bigint').map(([k, v]) => `${k} ${String(v)}`).join(', ')
}

/** JSON with 64-bit ids (bigint) as decimal strings. */
function toJson(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x))
}
