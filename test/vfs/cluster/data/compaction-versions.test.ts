/*
 * A compaction and the node's version (vfs/cluster/data/compaction.ts):
 * when it changes the file's used bytes (overwritten records merged) the
 * version goes one on and the notification names it; when it changes no
 * attribute (records side by side rewritten as one slice) the version stays
 * and the notification names it as it is, so other servers keep their
 * copies of the node (their slice lists go whatever the version). The
 * writer's onChanged gets the same version.
 */
import pg from 'pg'
import t from 'tap'
import type { Test } from 'tap'
import { parseChange } from '../../../../vfs/cluster/change.ts'
import { createFileData } from '../../../../vfs/cluster/data/file-data.ts'
import { CHANGE_CHANNEL } from '../../../../vfs/cluster/schema.ts'
import { fixture, type Fixture } from './setup.ts'

const now = { sec: 1_700_000_000, nsec: 0 }
const layout = { chunkSize: 64 * 1024, blockSize: 16 * 1024 }

async function node(fx: Fixture, inode: bigint): Promise<{ used: bigint; ver: bigint }> {
  const r = (await fx.db.query('SELECT used, ver FROM tsnfs_node WHERE inode = $1', [inode])).rows[0] ?? {}
  return { used: BigInt(r['used'] as string), ver: BigInt(r['ver'] as string) }
}

/** The versions server `sid` named for `inode`, in order, heard on a LISTEN connection of the test's own. */
async function versionsNamed(t: Test, url: string, sid: bigint, inode: bigint): Promise<(bigint | null)[]> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  t.teardown(() => client.end())
  const out: (bigint | null)[] = []
  client.on('notification', (n) => {
    const c = n.payload === undefined ? null : parseChange(n.payload)
    if (c === null || c.sid !== sid || c.inodes === 'all' || !c.inodes.includes(inode)) return
    out.push(c.vers.get(inode) ?? null)
  })
  await client.query(`LISTEN ${CHANGE_CHANNEL}`)
  return out
}

async function until(what: string, pred: () => boolean): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (pred()) return
    await new Promise((r) => setTimeout(r, 5))
  }
  throw new Error(`timed out waiting until ${what}`)
}

t.test('a compaction that changes used bumps the version; one that changes no attribute names it unchanged', async (t) => {
  const fx = await fixture(t)
  const told: [bigint[], Map<bigint, bigint>][] = []
  const fd = createFileData({ db: fx.db, store: fx.store, sid: 1n, ...layout, compactAt: 0, onChanged: (i, v) => { told.push([i, new Map(v)]) } })
  t.teardown(() => fd.close())

  // Four writes over the same 100 bytes: 400 bytes stored, 100 after compaction.
  const over = await fx.newFile()
  const heardOver = await versionsNamed(t, fx.url, 1n, over)
  const v = (await node(fx, over)).ver
  for (let i = 0; i < 4; i++) await fd.write(over, 0n, Buffer.alloc(100, i + 1), 'file_sync', now)
  const o1 = await node(fx, over)
  t.same(o1, { used: 400n, ver: v + 4n }, 'four attaches: 400 bytes stored, the version four on (one each)')
  told.length = 0
  t.equal((await fd.compact(over, 0)).outcome, 'compacted')
  const o2 = await node(fx, over)
  t.same(o2, { used: 100n, ver: v + 5n }, 'compaction: used 400 → 100, the version one on')
  await until('the compaction is heard', () => heardOver.length >= 5)
  t.same(heardOver, [1n, 2n, 3n, 4n, 5n].map((d) => v + d), 'every attach and the compaction named the version it reached')
  t.same(told, [[[over], new Map([[over, v + 5n]])]], "the writer's onChanged got the compaction's version")

  // Four writes side by side: 400 bytes stored before and after (one slice of the same bytes).
  const side = await fx.newFile()
  const heardSide = await versionsNamed(t, fx.url, 1n, side)
  const w = (await node(fx, side)).ver
  for (let i = 0; i < 4; i++) await fd.write(side, BigInt(i * 100), Buffer.alloc(100, i + 1), 'file_sync', now)
  t.same(await node(fx, side), { used: 400n, ver: w + 4n })
  told.length = 0
  t.equal((await fd.compact(side, 0)).outcome, 'compacted')
  t.same(await node(fx, side), { used: 400n, ver: w + 4n }, 'compaction changing no attribute: the version stays')
  await until('the compaction is heard', () => heardSide.length >= 5)
  t.same(heardSide, [1n, 2n, 3n, 4n, 4n].map((d) => w + d), 'and is named at that version (not unversioned: other servers keep their copies)')
  t.same(told, [[[side], new Map([[side, w + 4n]])]])
  const back = Buffer.concat([0, 1, 2, 3].map((i) => Buffer.alloc(100, i + 1)))
  t.same(await fd.read(side, 0n, 400, 400n), back, 'the bytes are unchanged')
})
