/*
 * The smaller cases of directory mutation: a linear directory on a file
 * system without dir_index (first fit, records reused after removal, a new
 * block when all are full), ENOSPC when the directory cannot grow, and
 * READDIR cookies that stay valid while other names come and go.
 */
import t from 'tap'
import type { Test } from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import { FT, parseDirBlock } from '../../../vfs/engine/format/dirent.ts'
import { INODE_FLAGS } from '../../../vfs/engine/format/inode.ts'
import { Ext4Image } from '../../../vfs/engine/reader/image.ts'
import { HTREE_START, htreeReadDir } from '../../../vfs/engine/reader/htree-readdir.ts'
import { DirectTxnManager } from '../../../vfs/engine/txn/direct-txn.ts'
import { Directories } from '../../../vfs/engine/dir/dir-ops.ts'
import { dirFsOf } from '../../../vfs/engine/dir/dir-file.ts'
import { mkfs, scratch, seededBytes, sh, whyNoLoopMount, withMount } from './format-helpers.ts'
import { randomNames, SyncFileReadAt } from './htree-helpers.ts'
import { PoolDir, setLinks } from './htree-test-dir.ts'

const why = whyNoLoopMount()

async function setup(t: Test, features: string, maxBlocks = Infinity): Promise<{ image: string; pre: Ext4Image; pool: PoolDir; target: number; bigIno: number; txm: DirectTxnManager; dirs: Directories; dev: ImageFile }> {
  const dir = scratch(t, 'htree-linear')
  const image = path.join(dir, 'img')
  mkfs(image, 64 << 20, ['-b', '1024', '-O', features, '-N', '512'])
  const cmds = path.join(dir, 'cmds')
  fs.writeFileSync(cmds, 'mkdir big\nwrite /dev/null target\n')
  sh('debugfs', ['-w', '-f', cmds, image])
  const f = new SyncFileReadAt(image)
  t.teardown(() => {
    f.close()
  })
  const pre = await Ext4Image.open(f)
  const bigIno = await pre.lookup('big')
  const target = await pre.lookup('target')
  const pool = await PoolDir.open(pre, bigIno, maxBlocks)
  const dev = await ImageFile.open(image)
  const txm = new DirectTxnManager(dev, 1024)
  return { image, pre, pool, target, bigIno, txm, dirs: new Directories(dirFsOf(pre.sb)), dev }
}

type Op = (fn: (h: Awaited<ReturnType<DirectTxnManager['begin']>>) => Promise<unknown>) => Promise<void>

/** The names in a linear directory, in the order first fit scans them (block by block, record by record). */
async function dirOrder(op: Op, pool: PoolDir): Promise<Buffer[]> {
  const out: Buffer[] = []
  await op(async (h) => {
    for (let l = 0; l < pool.blockCount(); l++) {
      const buf = await h.get(await pool.physical(h, l))
      for (const e of parseDirBlock(buf, buf.length, `block ${l}`).entries) if (e.inode !== 0) out.push(Buffer.from(e.name))
    }
  })
  return out
}

/** New random names, each as long as its model, none among taken (which grows). */
function sameLengthNames(rand: (n: number) => Buffer, models: readonly Buffer[], taken: Set<string>): Buffer[] {
  return models.map((m) => {
    for (;;) {
      const b = rand(m.length)
      for (let i = 0; i < b.length; i++) if (b[i] === 0 || b[i] === 0x2f) b[i] = 0x5f
      const key = b.toString('hex')
      if (taken.has(key) || key === '2e' || key === '2e2e') continue
      taken.add(key)
      return b
    }
  })
}

t.test('a linear directory (no dir_index) grows block by block, reuses freed records; kernel and e2fsck agree', why === undefined ? {} : { skip: why }, async (t) => {
  const seed = Number(process.env.HTREE_SEED ?? Date.now() % 2 ** 31)
  t.comment(`seed ${seed} (HTREE_SEED=${seed} to repeat)`)
  const rand = seededBytes(seed)
  const { image, pre, pool, target, bigIno, txm, dirs, dev } = await setup(t, '^dir_index,metadata_csum,extent,64bit')
  const first = randomNames(rand, 500)
  const op = async (fn: (h: Awaited<ReturnType<DirectTxnManager['begin']>>) => Promise<unknown>): Promise<void> => {
    const h = await txm.begin()
    try {
      await fn(h)
    } finally {
      txm.end(h)
    }
  }
  for (const n of first) await op((h) => dirs.addEntry(h, pool, n, target, FT.REG_FILE))
  const grown = pool.blockCount()
  t.ok(grown > 5, `grew to ${grown} blocks`)
  t.notOk(pool.isIndexed(), 'stays linear without dir_index')
  // Every third name goes. The 100 names added after are as long as the first 100 removed,
  // taken in directory order, and go in that order: then first fit surely finds room without
  // a new block (name k fits the record freed by removed name k, and by induction no earlier
  // name took that room, since first fit never passes a record with room for it). Names of
  // random lengths need not fit: a freed 12-byte record cannot hold a 40-byte name.
  const gone = first.filter((_, i) => i % 3 === 0)
  const goneKeys = new Set(gone.map((n) => n.toString('hex')))
  const order = (await dirOrder(op, pool)).filter((n) => goneKeys.has(n.toString('hex')))
  t.equal(order.length, gone.length, 'every removed name is found in the directory blocks')
  const later = sameLengthNames(rand, order.slice(0, 100), new Set(first.map((n) => n.toString('hex'))))
  const names = [...first, ...later]
  for (const n of gone) await op((h) => dirs.removeEntry(h, pool, n))
  for (const n of later) await op((h) => dirs.addEntry(h, pool, n, target, FT.REG_FILE))
  t.equal(pool.blockCount(), grown, 'no new block: freed records were reused')
  const keep = names.filter((n) => !gone.includes(n))
  await op(async (h) => {
    await pool.finish(h)
    await setLinks(h, pre, target, 1 + keep.length)
  })
  await txm.close()
  await dev.close()
  const fsck = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' })
  t.equal(fsck.status, 0, 'e2fsck -fn: clean')
  if (fsck.status !== 0) t.comment(fsck.stdout)
  const f = new SyncFileReadAt(image)
  t.teardown(() => {
    f.close()
  })
  const img = await Ext4Image.open(f)
  const inode = await img.readInode(bigIno)
  t.equal(inode.flags & INODE_FLAGS.INDEX, 0, 'no INDEX_FL')
  const want = new Set(keep.map((n) => n.toString('hex')))
  t.same(new Set((await img.readDir(bigIno, inode)).map((d) => d.name.toString('hex')).filter((n) => n !== '2e' && n !== '2e2e')), want, 'our reader lists the names kept')
  await withMount(t, image, (mnt) => {
    t.same(new Set(fs.readdirSync(path.join(mnt, 'big'), { encoding: 'buffer' }).map((n) => n.toString('hex'))), want, 'the kernel lists the names kept')
  })
})

t.test('ENOSPC when the directory cannot grow; the directory stays as it was', async (t) => {
  const rand = seededBytes(7)
  const { pool, target, txm, dirs, dev } = await setup(t, 'dir_index,metadata_csum,extent,64bit', 3)
  t.teardown(async () => {
    await txm.close()
    await dev.close()
  })
  let added = 0
  let err: unknown
  const all = randomNames(rand, 500)
  for (const n of all) {
    const h = await txm.begin()
    try {
      await dirs.addEntry(h, pool, n, target, FT.REG_FILE)
      added++
    } catch (e) {
      err = e
      break
    } finally {
      txm.end(h)
    }
  }
  t.match(err, { code: 'ENOSPC' }, `ENOSPC after ${added} names in 4 blocks`)
  t.equal(pool.blockCount(), 4, 'all four blocks used')
  const h = await txm.begin()
  let missing = 0
  for (const n of all.slice(0, added)) if ((await dirs.find(h, pool, n))?.inode !== target) missing++
  txm.end(h)
  t.equal(missing, 0, 'every name added before ENOSPC is still found')
})

t.test('READDIR cookies stay valid while other names are added and removed', async (t) => {
  const seed = Number(process.env.HTREE_SEED ?? Date.now() % 2 ** 31)
  t.comment(`seed ${seed} (HTREE_SEED=${seed} to repeat)`)
  const rand = seededBytes(seed)
  const { pool, target, txm, dirs, dev } = await setup(t, 'dir_index,metadata_csum,extent,64bit')
  t.teardown(async () => {
    await txm.close()
    await dev.close()
  })
  const names = randomNames(rand, 4000)
  const h = await txm.begin()
  for (const n of names.slice(0, 2000)) await dirs.addEntry(h, pool, n, target, FT.REG_FILE)
  const dx = dirs.dxDir(h, pool)
  // List in pages of 50; between pages, add one new name and remove one not yet listed or already listed.
  const seen = new Map<string, number>()
  const removed = new Set<string>()
  let cookie = HTREE_START
  let extra = 2000
  for (let page = 0; ; page++) {
    const r = await htreeReadDir(dx, cookie, 50)
    for (const e of r.entries) seen.set(e.name.toString('hex'), (seen.get(e.name.toString('hex')) ?? 0) + 1)
    if (r.eof) break
    cookie = r.entries[r.entries.length - 1]?.cookie ?? cookie
    const add = names[extra++]
    if (add !== undefined) await dirs.addEntry(h, pool, add, target, FT.REG_FILE)
    const victim = names[(page * 37) % 2000]
    if (victim !== undefined && !removed.has(victim.toString('hex'))) {
      await dirs.removeEntry(h, pool, victim)
      removed.add(victim.toString('hex'))
    }
  }
  txm.end(h)
  let lost = 0
  for (const n of names.slice(0, 2000)) {
    const k = n.toString('hex')
    if (!removed.has(k) && seen.get(k) !== 1) lost++
  }
  t.equal(lost, 0, `every original name never removed is listed exactly once (${removed.size} removed, ${extra - 2000} added meanwhile)`)
  t.equal([...seen.values()].filter((c) => c > 1).length, 0, 'nothing listed twice')
})
