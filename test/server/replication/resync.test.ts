/*
 * Full resync (issue 15 §3), primary and standby in one process over real
 * sockets and real directories: a tree that existed before replication is
 * copied to a new standby whole (content, modes, owners, times, symlinks,
 * hard links, a fifo) and, after a takeover, answers the same handles,
 * fileids and READDIR cookies; a standby marked diverged (extra files,
 * changed bytes of the same size and mtime) is repaired, with --resync-verify
 * finding the changed bytes by checksum; an unchanged tree costs listings
 * only (no file data).
 */
import t from 'tap'
import { closeSync, mkdirSync, openSync, statSync, utimesSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { writeAtomic } from '../../../server/replication/node-state.ts'
import { Nfs3, S } from '../../helpers/local.ts'
import { caughtUp, makeTree, snapshot, startPair, until } from './resync-fixtures.ts'
import type { Pair } from './resync-fixtures.ts'

const seed = Number(process.env.REPL_SEED ?? Date.now() % 100_000)
t.comment(`seed ${seed} (REPL_SEED to repeat)`)

const last = (pair: Pair) => (): bigint => pair.repl.view().positions[0]?.applied ?? -1n
const resyncOf = (pair: Pair) => pair.repl.view().peers[0]?.resync

/** Marks the standby's export as needing a resync, as the standby does itself when a change does not fit its tree. */
async function markDiverged(pair: Pair): Promise<void> {
  const id = pair.repl.view().positions[0]?.exportId
  if (id === undefined) throw new Error('no export')
  await writeAtomic(join(pair.standbyState, 'replication'), `resync-${String(id)}`, 'marked by the test\n')
}

t.test('a tree that existed before replication reaches a new standby whole; after a takeover, the same handles, fileids and cookies', async (t) => {
  const dir = t.testdir({ export: {}, copy: {} })
  const exportPath = join(dir, 'export')
  const files = makeTree(exportPath, seed)
  const pair = await startPair(t, { exportPath, standbyRoot: join(dir, 'copy'), dir })
  await until('the resync and catch-up', () => caughtUp(pair, last(pair)))
  t.same(snapshot(join(dir, 'copy')), snapshot(exportPath), 'trees identical: content, modes, owners, mtimes, symlinks, hard links, fifo')
  const r = resyncOf(pair)
  t.equal(r?.count, 1, 'one resync')
  // Every file but the empty one; the hard links' other names are linked on the standby, not sent again.
  t.equal(r?.files, files - 1, `data sent once per non-empty file (${String(r?.files)})`)

  // What a client holds before the takeover.
  const one = await Nfs3.connect(t, pair.server.port)
  const root = await one.mount(exportPath)
  const rootList = await one.readdir(root, 0n, Buffer.alloc(8), 65536)
  t.equal(rootList.status, S.OK)
  const names = rootList.names ?? []
  const handles = new Map<string, Buffer>()
  const fileids = new Map<string, bigint | undefined>()
  for (const name of names) {
    if (name === '.' || name === '..') continue
    const l = await one.lookup(root, name)
    if (l.fh !== undefined) handles.set(name, l.fh)
    fileids.set(name, l.fileid)
  }
  // A write after the resync still reaches the standby (APPEND from P0 on).
  // A regular file of makeTree's (f<i>-<random>), never 'fifo': the listing is in name-hash order, so 'fifo' may come first.
  const f0 = [...handles.entries()].find(([n]) => /^f\d+-/.test(n))
  if (f0 !== undefined) t.equal((await one.write(f0[1], 0n, Buffer.from('after the resync'), 2)).status, S.OK)
  await until('the write shipped', () => caughtUp(pair, last(pair)))
  one.c.close()
  await pair.server.close()
  const took = await pair.standby?.service.takeover({ force: true })
  t.equal(took?.status, 0, 'TAKEOVER: REPL_OK')
  const served = pair.standby?.server
  if (served === null || served === undefined) return t.fail('the standby serves after the takeover')
  const two = await Nfs3.connect(t, served.port)
  t.ok((await two.mount(exportPath)).equals(root), 'the same root handle')
  const after = await two.readdir(root, 0n, Buffer.alloc(8), 65536)
  t.same(after.names, rootList.names, 'the same listing, in the same order')
  t.same(after.cookies, rootList.cookies, 'the same READDIR cookies')
  let stale = 0
  for (const [name, fh] of handles) {
    const a = await two.getattr(fh)
    if (a.status !== S.OK) stale++
    else t.equal(a.fileid, fileids.get(name), `${name}: the same fileid`)
  }
  t.equal(stale, 0, 'no old handle is stale')
  if (f0 !== undefined) t.equal((await two.read(f0[1], 0n, 16)).data?.toString(), 'after the resync')
})

t.test('a diverged standby is repaired: extra files go, changed bytes of the same size and mtime are found with verify; an unchanged tree sends no file data', async (t) => {
  const dir = t.testdir({ export: {}, copy: {} })
  const exportPath = join(dir, 'export')
  const copy = join(dir, 'copy')
  makeTree(exportPath, seed + 1, 30, 4)
  const pair = await startPair(t, { exportPath, standbyRoot: copy, dir, primary: { resyncVerify: true } })
  await until('the first resync', () => caughtUp(pair, last(pair)))
  t.same(snapshot(copy), snapshot(exportPath))

  // An unchanged tree: listings only.
  await pair.stopStandby()
  await markDiverged(pair)
  await pair.startStandby()
  await until('the second resync', () => (resyncOf(pair)?.count ?? 0) >= 2 && caughtUp(pair, last(pair)))
  t.equal(resyncOf(pair)?.bytes, 0, 'no file data sent for an unchanged tree')
  t.same(snapshot(copy), snapshot(exportPath))

  // Diverge the copy behind the standby's back.
  await pair.stopStandby()
  mkdirSync(join(copy, 'extra-dir', 'deeper'), { recursive: true })
  writeFileSync(join(copy, 'extra-dir', 'deeper', 'x'), 'extra')
  writeFileSync(join(copy, 'extra-file'), 'extra')
  const victim = Object.entries(snapshot(copy)).find(([, n]) => n.type === 'file' && n.size > 5000n && n.links === undefined)?.[0]
  if (victim === undefined) return t.fail('no file to change')
  const vp = join(copy, victim)
  const st = statSync(vp)
  const fd = openSync(vp, 'r+')
  writeSync(fd, Buffer.from('CHANGED'), 0, 7, 4000)
  closeSync(fd)
  utimesSync(vp, st.atime, st.mtime)
  t.equal(statSync(vp).mtimeMs, st.mtimeMs, 'the changed file keeps its size and mtime')
  await markDiverged(pair)
  await pair.startStandby()
  await until('the third resync', () => (resyncOf(pair)?.count ?? 0) >= 3 && caughtUp(pair, last(pair)))
  t.same(snapshot(copy), snapshot(exportPath), 'repaired: the extras are gone, the bytes fixed')
  const bytes = resyncOf(pair)?.bytes ?? -1
  t.ok(bytes > 0 && bytes <= 1_048_576, `only the changed 1 MiB range was sent (${String(bytes)} bytes)`)
})
