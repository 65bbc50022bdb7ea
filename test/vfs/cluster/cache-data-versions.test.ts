/*
 * Data-side changes and the metadata cache's versions (issue 17): an attach
 * (vfs/cluster/data/attach.ts) changes a file's size, mtime, ctime and used
 * bytes, so it bumps the node's version and names it in its notification as
 * the metadata statements do (meta/cache.ts orders copies by it). Two or
 * three servers on one PostgreSQL database: another server's writes reach
 * a server that cached the file; a reply read before the attach is not
 * cached over the newer row; and the writer whose attach reply was lost
 * after the commit drops its older copy when its own notification comes
 * (and does not delete the blocks that attach made the file's: upload.ts
 * abandonSlices).
 */
import pg from 'pg'
import t from 'tap'
import type { Test } from 'tap'
import { parseChange } from '../../../vfs/cluster/change.ts'
import { PgDb } from '../../../vfs/cluster/clients/pg-db.ts'
import { PgStore } from '../../../vfs/cluster/clients/pg-store.ts'
import { checkReferences } from '../../../vfs/cluster/data/fsck.ts'
import type { ClusterVfs } from '../../../vfs/cluster/cluster-vfs.ts'
import { openClusterVfs } from '../../../vfs/cluster/open.ts'
import { CHANGE_CHANNEL } from '../../../vfs/cluster/schema.ts'
import type { SqlDb, SqlRows } from '../../../vfs/cluster/sql.ts'
import type { Attr, FileRef } from '../../../vfs/types.ts'
import { b, mkfile } from '../conformance-helpers.ts'
import { newCluster, dropTemplate, type Cluster } from './meta-helpers.ts'

t.teardown(dropTemplate)

async function until(what: string, pred: () => boolean): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (pred()) return
    await new Promise((r) => setTimeout(r, 5))
  }
  throw new Error(`timed out waiting until ${what}`)
}

/** Every change notification on the file system, heard on a LISTEN connection of the test's own. */
async function changeFeed(t: Test, url: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  const payloads: string[] = []
  client.on('notification', (n) => { if (n.payload !== undefined) payloads.push(n.payload) })
  await client.query(`LISTEN ${CHANGE_CHANNEL}`)
  t.teardown(() => client.end())
  return payloads
}

/** The versions named for `inode` by server `sid`'s notifications so far, in order (null: named without one). */
function namedVersions(payloads: readonly string[], sid: bigint, inode: bigint): (bigint | null)[] {
  const out: (bigint | null)[] = []
  for (const p of payloads) {
    const c = parseChange(p)
    if (c === null || c.sid !== sid || c.inodes === 'all' || !c.inodes.includes(inode)) continue
    out.push(c.vers.get(inode) ?? null)
  }
  return out
}

interface Row { size: bigint; used: bigint; mtime: { sec: number; nsec: number }; ver: bigint }

async function rowOf(db: SqlDb, f: FileRef): Promise<Row> {
  const r = (await db.query('SELECT size, used, mtime_sec, mtime_nsec, ver FROM tsnfs_node WHERE inode = $1', [f.id])).rows[0] ?? {}
  return {
    size: BigInt(r['size'] as string),
    used: BigInt(r['used'] as string),
    mtime: { sec: Number(r['mtime_sec']), nsec: Number(r['mtime_nsec']) },
    ver: BigInt(r['ver'] as string),
  }
}

/** The attributes a server answered are the database row's (size, mtime, used: the row's are below 4 KiB here). */
function sameAsRow(t: Test, a: Attr, row: Row, msg: string): void {
  t.same({ size: a.size, mtime: a.mtime, used: a.used }, { size: row.size, mtime: row.mtime, used: row.used }, msg)
}

/**
 * A server whose database replies can be held or lost, for the races: `hold(match)` makes the
 * next statement `match` accepts run, then wait for release() before its reply is returned;
 * `loseAfter(match)` makes it run (and commit) and then fail as a connection lost before the
 * reply. `heard` collects the inodes other servers' notifications named.
 */
async function faultyServer(t: Test, c: Cluster, host: string): Promise<{
  vfs: ClusterVfs
  heard: Set<bigint>
  hold: (match: (text: string, params: readonly unknown[]) => boolean) => { ran: Promise<void>; release: () => void }
  loseAfter: (match: (text: string) => boolean) => { lost: () => boolean }
}> {
  const raw = new PgDb({ url: c.url, max: 6 })
  let rule: ((text: string, params: readonly unknown[], r: SqlRows) => Promise<SqlRows>) | undefined
  const db: SqlDb = {
    transaction: (fn, opts) => raw.transaction(fn, opts),
    query: async (text, params = []) => {
      const r = await raw.query(text, params)
      const f = rule
      return f === undefined ? r : f(text, params, r)
    },
    listen: (channel, onPayload, onLost) => raw.listen(channel, onPayload, onLost),
    stats: () => raw.stats(),
    close: () => raw.close(),
  }
  const heard = new Set<bigint>()
  const vfs = await openClusterVfs({
    db, store: new PgStore(raw), exportPath: '/shared', exportId: 7, host, heartbeatMs: 60_000,
    onRemoteChange: (inodes) => { for (const i of inodes === 'all' ? [] : inodes) heard.add(i) },
  })
  t.teardown(async () => {
    await vfs.close().catch(() => undefined)
    await raw.close()
  })
  return {
    vfs,
    heard,
    hold(match) {
      let ran!: () => void
      let release!: () => void
      const ranP = new Promise<void>((r) => { ran = r })
      const released = new Promise<void>((r) => { release = r })
      rule = async (text, params, r) => {
        if (!match(text, params)) return r
        rule = undefined
        ran()
        await released
        return r
      }
      return { ran: ranP, release }
    },
    loseAfter(match) {
      let lost = false
      rule = async (text, _params, r) => {
        if (!match(text)) return r
        rule = undefined
        lost = true
        throw new Error('Connection terminated unexpectedly (test: the reply was lost after the commit)')
      }
      return { lost: () => lost }
    },
  }
}

t.test("another server's FILE_SYNC write and UNSTABLE write + COMMIT: a version each, named, and seen by a server that cached the file", async (t) => {
  const c = await newCluster()
  t.teardown(() => c.close())
  const heardOnA = new Set<bigint>()
  const A = await c.server({ onRemoteChange: (inodes) => { for (const i of inodes === 'all' ? [] : inodes) heardOnA.add(i) } })
  const B = await c.server()
  const payloads = await changeFeed(t, c.url)
  const f = await mkfile(A.vfs, A.vfs.root(), 'f')
  t.equal((await A.vfs.getattr(f)).size, 0n, 'A caches f at size 0')
  const v0 = (await rowOf(A.db, f)).ver

  await B.vfs.write(f, 0n, b('hello'), 'file_sync')
  const r1 = await rowOf(A.db, f)
  t.equal(r1.ver, v0 + 1n, "B's FILE_SYNC write (one attach) took f's version one on")
  await until("B's attach is heard on the test's feed", () => namedVersions(payloads, B.vfs.sid, f.id).length >= 1)
  t.same(namedVersions(payloads, B.vfs.sid, f.id), [v0 + 1n], "B's notification names the version its attach reached")
  sameAsRow(t, await A.vfs.getattr(f), r1, "A's next GETATTR: B's size, mtime and used")
  sameAsRow(t, await B.vfs.getattr(f), r1, "B's own GETATTR: the same")

  heardOnA.clear()
  await B.vfs.write(f, 5n, b(' world'), 'unstable')
  t.equal((await rowOf(A.db, f)).ver, v0 + 1n, 'an UNSTABLE write changes nothing in the database yet')
  await B.vfs.commit(f, 0n, 0)
  const r2 = await rowOf(A.db, f)
  t.equal(r2.ver, v0 + 2n, "B's COMMIT (one attach) took the version one on again")
  t.equal(r2.size, 11n)
  await until("B's commit is heard", () => namedVersions(payloads, B.vfs.sid, f.id).length >= 2)
  t.same(namedVersions(payloads, B.vfs.sid, f.id), [v0 + 1n, v0 + 2n], 'and its notification names it')
  sameAsRow(t, await A.vfs.getattr(f), r2, "A's next GETATTR after B's COMMIT: B's size, mtime and used")
  t.ok(heardOnA.has(f.id), 'A heard of it (the barrier waited for the notification)')
  t.equal((await A.vfs.read(f, 0n, 100)).data.toString(), 'hello world', "A reads B's bytes")
})

t.test("a GETATTR reply read before another server's attach is not cached over the newer row", async (t) => {
  const c = await newCluster()
  t.teardown(() => c.close())
  const B = await c.server()
  const A = await faultyServer(t, c, 'test-a')
  const payloads = await changeFeed(t, c.url)
  const f = await mkfile(B.vfs, B.vfs.root(), 'f')
  const before = await rowOf(B.db, f)
  // A has no copy of f: GETATTR reads the row (no barrier), and its reply is held.
  const held = A.hold((text, params) => /FROM tsnfs_node WHERE inode = \$1$/.test(text) && params[0] === f.id)
  const late = A.vfs.getattr(f)
  await held.ran
  await B.vfs.write(f, 0n, b('hello'), 'file_sync')
  const after = await rowOf(B.db, f)
  t.equal(after.ver, before.ver + 1n, 'the attach took the version one on')
  await until("A and the test's feed have heard of B's attach", () => A.heard.has(f.id) && namedVersions(payloads, B.vfs.sid, f.id).length >= 2)
  t.same(namedVersions(payloads, B.vfs.sid, f.id), [before.ver, after.ver], "B's create, then its attach, each named with its version")
  held.release()
  const old = await late
  t.equal(old.size, 0n, 'the held reply was read before the attach (size 0)')
  sameAsRow(t, await A.vfs.getattr(f), after, "A's next GETATTR: the row after the attach, not the late reply")
  sameAsRow(t, await A.vfs.getattr(f), after, 'and again (what A cached is the newer row)')
})

t.test('the writer whose attach reply was lost after the commit drops its older copy when its own notification comes', async (t) => {
  const c = await newCluster()
  t.teardown(() => c.close())
  const B = await faultyServer(t, c, 'test-b')
  const other = await c.server()
  const f = await mkfile(B.vfs, B.vfs.root(), 'f')
  t.equal((await B.vfs.getattr(f)).used, 0n, 'B caches f with nothing stored')
  const v0 = (await rowOf(other.db, f)).ver
  const lost = B.loseAfter((text) => text.includes('INSERT INTO tsnfs_chunk'))
  // The attach commits; its reply never reaches the data half, which then asks the database
  // whether it committed (data/upload.ts settleAttach): it did, so the WRITE is done, once.
  const err = await B.vfs.write(f, 0n, b('hello'), 'file_sync').then(() => null, (e: unknown) => e as Error)
  t.ok(lost.lost(), 'the attach ran and its reply was lost')
  t.equal(err, null, 'the WRITE succeeds: its attach committed')
  const row = await rowOf(other.db, f)
  t.equal(row.ver, v0 + 1n, 'the attach committed: version one on')
  t.equal(row.used, 5n, 'and 5 bytes stored')
  // GETATTR waits for the barrier, behind B's own notification of the attach.
  const a = await B.vfs.getattr(f)
  t.equal(a.used, row.used, "B's GETATTR: the stored bytes of the row, not its copy from before the attach")
  t.equal(a.size, row.size)
  // Whatever settles or abandons runs before close returns; the attach that committed
  // references those slices, so their blocks must stay.
  await B.vfs.close()
  const missing = (await checkReferences(other.db, new PgStore(other.db))).problems.filter((p) => p.kind === 'missing-block')
  t.strictSame(missing, [], 'every block a committed slice names is in the store')
  t.equal((await other.vfs.read(f, 0n, 100)).data.toString(), 'hello', 'another server reads the bytes')
})
