/*
 * The attach (vfs/cluster/data/attach.ts) against abandonSlices (upload.ts)
 * for the same slices: a flush whose attach reply never came abandons its
 * slices while that attach may still run on the database server. Exactly one
 * of them may have each slice: either the chunk names it and every block is
 * in the store, or nothing names it, the blocks are gone and the attach says
 * so (it must not be acknowledged). A second connection holds row locks to
 * order the two statements on the server.
 */
import pg from 'pg'
import t from 'tap'
import type { Test } from 'tap'
import { AttachLost, attachSlices, type Attached } from '../../../../vfs/cluster/data/attach.ts'
import { createFileData } from '../../../../vfs/cluster/data/file-data.ts'
import { checkReferences } from '../../../../vfs/cluster/data/fsck.ts'
import { sliceKeys } from '../../../../vfs/cluster/data/keys.ts'
import { abandonSlices, recordPending, uploadSlice } from '../../../../vfs/cluster/data/upload.ts'
import { COUNTER } from '../../../../vfs/cluster/schema.ts'
import type { SqlDb } from '../../../../vfs/cluster/sql.ts'
import { fixture, type Fixture } from './setup.ts'

const layout = { chunkSize: 64 * 1024, blockSize: 16 * 1024 }
const now = { sec: 1_700_000_000, nsec: 5 }
const SID = 3n

interface Prepared { inode: bigint; id: bigint; data: Buffer }

/** A file and one uploaded, pending slice of 40,000 bytes (three blocks) for it. */
async function prepared(fx: Fixture, id: bigint): Promise<Prepared> {
  const inode = await fx.newFile()
  const data = Buffer.alloc(40_000, Number(id % 200n) + 1)
  await recordPending(fx.db, SID, [{ id, size: data.length }])
  await uploadSlice(fx.store, id, data, layout.blockSize, 4)
  return { inode, id, data }
}

function attach(fx: Fixture, p: Prepared): Promise<Attached> {
  const record = { pos: 0, id: p.id, size: p.data.length, off: 0, len: p.data.length }
  return attachSlices(fx.db, { sid: null, inode: p.inode, slices: [{ idx: 0, record }], end: BigInt(p.data.length), mtime: now })
}

/** A connection of the test's own, in a transaction, to hold row locks. */
async function locker(t: Test, url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  t.teardown(() => c.end())
  await c.query('BEGIN')
  return c
}

/** Wait until `n` statements of this database wait for a lock on the server. */
async function waiting(fx: Fixture, n: number): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    const r = await fx.db.query(
      "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    if (Number(r.rows[0]?.['n']) >= n) return
    await new Promise((r) => setTimeout(r, 5))
  }
  throw new Error(`timed out waiting for ${n} statements to wait for a lock`)
}

/**
 * The outcome is one of the two consistent ones. Attached: the chunk names the slice, every
 * block is there, the node counts the bytes. Not attached: the attach failed with AttachLost
 * (EAGAIN: not acknowledged), no chunk, nothing counted, the blocks gone. fsck clean either way.
 */
async function consistent(t: Test, fx: Fixture, p: Prepared, outcome: PromiseSettledResult<Attached>): Promise<'attached' | 'lost'> {
  const chunk = await fx.db.query('SELECT slices FROM tsnfs_chunk WHERE inode = $1', [p.inode])
  const used = BigInt((await fx.db.query('SELECT used FROM tsnfs_node WHERE inode = $1', [p.inode])).rows[0]?.['used'] as string)
  const keys = sliceKeys(p.id, p.data.length, layout.blockSize)
  const present: string[] = []
  for (const k of keys) if (await fx.store.get(k, 0, 1).then(() => true, () => false)) present.push(k)
  const pending = (await fx.db.query('SELECT id FROM tsnfs_pending_slice')).rowCount
  t.equal(pending, 0, 'no pending row is left')
  let result: 'attached' | 'lost'
  if (outcome.status === 'fulfilled') {
    result = 'attached'
    t.equal(chunk.rowCount, 1, 'attached: the chunk names the slice')
    t.equal(used, BigInt(p.data.length), 'attached: the node counts its bytes')
    t.strictSame(present, keys, 'attached: every block of the slice is in the store')
    // The caller adds the attached bytes to the usage counter (file-data.ts); here the test does.
    await fx.db.query('UPDATE tsnfs_counter SET value = value + $2 WHERE name = $1', [COUNTER.usedBytes, p.data.length])
  } else {
    result = 'lost'
    t.ok(outcome.reason instanceof AttachLost, `not attached: the attach says so (${String(outcome.reason)})`)
    t.equal((outcome.reason as AttachLost).code, 'EAGAIN', 'as EAGAIN, never a success')
    t.equal(chunk.rowCount, 0, 'not attached: no chunk')
    t.equal(used, 0n, 'not attached: nothing counted')
    t.strictSame(present, [], 'not attached: the blocks are deleted')
  }
  t.strictSame((await checkReferences(fx.db, fx.store, layout)).problems, [], 'fsck: clean')
  return result
}

t.test('abandon after the attach has committed: it deletes nothing the chunk names', async (t) => {
  const fx = await fixture(t)
  const p = await prepared(fx, 501n)
  const attached = await Promise.allSettled([attach(fx, p)])
  await abandonSlices(fx.db, fx.store, [{ id: p.id, size: p.data.length }], layout.blockSize)
  t.equal(await consistent(t, fx, p, attached[0]), 'attached')
})

t.test('abandon before the attach runs: the attach attaches nothing and says so', async (t) => {
  const fx = await fixture(t)
  const p = await prepared(fx, 502n)
  const ver = (await fx.db.query('SELECT ver FROM tsnfs_node WHERE inode = $1', [p.inode])).rows[0]?.['ver']
  await abandonSlices(fx.db, fx.store, [{ id: p.id, size: p.data.length }], layout.blockSize)
  const attached = await Promise.allSettled([attach(fx, p)])
  t.equal(await consistent(t, fx, p, attached[0]), 'lost')
  const after = (await fx.db.query('SELECT ver, size FROM tsnfs_node WHERE inode = $1', [p.inode])).rows[0]
  t.strictSame(after, { ver, size: '0' }, "the node's version and size are unchanged")
})

t.test('the attach waits on the node row while abandon runs: one of them has the slice', async (t) => {
  const fx = await fixture(t)
  const p = await prepared(fx, 503n)
  const lock = await locker(t, fx.url)
  await lock.query('SELECT inode FROM tsnfs_node WHERE inode = $1 FOR UPDATE', [p.inode])
  const attaching = attach(fx, p)
  attaching.catch(() => undefined) // judged below from allSettled; not an unhandled rejection meanwhile
  await waiting(fx, 1)
  // The attach is on the server, stuck on the node row; its caller gives up and abandons.
  const abandoning = abandonSlices(fx.db, fx.store, [{ id: p.id, size: p.data.length }], layout.blockSize)
  // Either abandon finishes now (it got the pending row first) or it waits behind the attach.
  await Promise.race([abandoning, waiting(fx, 2)])
  await lock.query('COMMIT')
  const [attached] = await Promise.allSettled([attaching, abandoning])
  t.equal(await consistent(t, fx, p, attached), 'attached',
    'the attach took its pending row before it waited on the node, so abandon found none')
})

t.test('abandon and the attach both wait on the pending row, abandon first: abandon has it, the attach attaches nothing', async (t) => {
  const fx = await fixture(t)
  const p = await prepared(fx, 504n)
  const lock = await locker(t, fx.url)
  await lock.query('SELECT id FROM tsnfs_pending_slice WHERE id = $1 FOR UPDATE', [p.id])
  const abandoning = abandonSlices(fx.db, fx.store, [{ id: p.id, size: p.data.length }], layout.blockSize)
  await waiting(fx, 1)
  const attaching = attach(fx, p)
  // Settled is read below; this only keeps its rejection from counting as unhandled when the
  // attach's answer (AttachLost) arrives before the reply to the COMMIT that released it (CI, under load).
  attaching.catch(() => undefined)
  await waiting(fx, 2)
  await lock.query('COMMIT')
  const [attached] = await Promise.allSettled([attaching, abandoning])
  t.equal(await consistent(t, fx, p, attached), 'lost',
    'abandon queued first for the row, so it deleted it and the blocks')
})

t.test("a flush whose slices were abandoned before its attach ran: EAGAIN, the bytes stay staged, the retry stores them once", async (t) => {
  const fx = await fixture(t)
  let raced = false
  // Before the flush's attach statement, an abandon of the same slices lands (as from an earlier
  // attempt of this flush that gave up, or a reclaim).
  const db: SqlDb = {
    transaction: (fn, opts) => fx.db.transaction(fn, opts),
    query: async (text, params = []) => {
      if (!raced && text.includes('INSERT INTO tsnfs_chunk')) {
        raced = true
        const rows = (await fx.db.query('SELECT id, size FROM tsnfs_pending_slice')).rows
        await abandonSlices(fx.db, fx.store, rows.map((r) => ({ id: BigInt(r['id'] as string), size: Number(r['size']) })), layout.blockSize)
      }
      return fx.db.query(text, params)
    },
    listen: (channel, onPayload, onLost) => fx.db.listen(channel, onPayload, onLost),
    stats: () => fx.db.stats(),
    close: () => Promise.resolve(),
  }
  const fd = createFileData({ db, store: fx.store, sid: SID, ...layout })
  t.teardown(() => fd.close())
  const ino = await fx.newFile()
  const data = Buffer.alloc(40_000, 6)
  await t.rejects(fd.write(ino, 0n, data, 'file_sync', now), { code: 'EAGAIN', name: 'AttachLost' }, 'the WRITE fails with EAGAIN (JUKEBOX): not acknowledged')
  t.ok(raced, 'the abandon landed before the attach')
  t.equal(fd.staged(ino)?.size, BigInt(data.length), 'its bytes stay staged')
  t.equal((await fx.db.query('SELECT * FROM tsnfs_chunk')).rowCount, 0, 'nothing attached')
  await fd.flush(ino)
  await fd.idle()
  await fd.flushUsage()
  fd.invalidate(ino)
  const chunk = (await fx.db.query('SELECT octet_length(slices) AS n FROM tsnfs_chunk WHERE inode = $1', [ino])).rows[0]?.['n']
  t.equal(chunk, 24, 'the retry attached the bytes once (one 24-byte record)')
  t.strictSame((await checkReferences(fx.db, fx.store, layout)).problems, [], 'fsck: clean (no missing block, no orphan, usage right)')
  t.strictSame(await fd.read(ino, 0n, data.length, BigInt(data.length)), data, 'the bytes read back')
})
