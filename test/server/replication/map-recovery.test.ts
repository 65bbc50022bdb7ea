/*
 * A primary's id map redone from its change log (server/replication/map-recovery.ts): a stable
 * reply waits for the log's fdatasync only, the map's binds are written at checkpoints. These
 * tests crash the primary at the worst point, after the replies and before the map wrote
 * anything: the state directory is copied as a crash leaves it (the log's records are on disk,
 * the map's are still in memory) and a new primary is opened on the copy, over the same local
 * backend. Every vid a reply showed must come back (same handles, same fileids), removed ones
 * stay stale, and the vid counter does not hand one out again.
 */
import t from 'tap'
import type { Test } from 'tap'
import { cpSync, mkdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ChangeLog } from '../../../server/replication/change-log.ts'
import { recoverMap } from '../../../server/replication/map-recovery.ts'
import { replicationDir } from '../../../server/replication/node-state.ts'
import { openReplica } from '../../../server/replication/primary.ts'
import type { ReplicaParts } from '../../../server/replication/primary.ts'
import { LocalVfs } from '../../../vfs/local/local-vfs.ts'
import { IdMap } from '../../../vfs/replica/id-map.ts'
import type { FileRef } from '../../../vfs/types.ts'

const EXPORT = 7
const b = (s: string): Buffer => Buffer.from(s)
const owner = { uid: 0, gid: 0 }
const file = { how: 'guarded', attr: { mode: 0o644 } } as const

interface Primary {
  parts: ReplicaParts
  backend: LocalVfs
}

async function openPrimary(base: string, stateDir: string, segment?: number): Promise<Primary> {
  const backend = new LocalVfs({ root: join(base, 'data'), stateDir: join(base, 'local-state') })
  const parts = await openReplica(stateDir, EXPORT, backend, 1n, undefined, undefined, segment === undefined ? {} : { segment })
  return { parts, backend }
}

const mapLog = (stateDir: string): string => join(replicationDir(stateDir), String(EXPORT), 'map', 'map.log')

/** What a crash leaves: the state directory as it is on disk now, copied aside. */
function crashCopy(stateDir: string, to: string): string {
  cpSync(stateDir, to, { recursive: true })
  return to
}

/** The names under `dir` and their vids, through the layer. */
async function lookupAll(t: Test, p: Primary, dir: FileRef, names: string[]): Promise<Map<string, FileRef>> {
  const out = new Map<string, FileRef>()
  for (const n of names) {
    const r = await p.parts.vfs.lookup(dir, b(n))
    t.equal(r.attr.fileid, r.ref.id, `${n}: the fileid is the vid`)
    out.set(n, r.ref)
  }
  return out
}

t.test('a crash after the log is durable and before the map is written loses no vid', async (t) => {
  const base = t.testdir()
  mkdirSync(join(base, 'data'))
  const stateDir = join(base, 'state')
  const one = await openPrimary(base, stateDir)
  const v = one.parts.vfs
  const root = v.root()
  const mapBytes = statSync(mapLog(stateDir)).size

  const d = await v.mkdir(root, b('d'), { mode: 0o755 }, owner)
  const made = new Map<string, FileRef>()
  for (let i = 0; i < 10; i++) {
    const f = await v.create(d.ref, b(`f${String(i)}`), file, owner)
    await v.write(f.ref, 0n, b(`data ${String(i)}`), 'unstable')
    await v.commit(f.ref, 0n, 0)
    made.set(`f${String(i)}`, f.ref)
  }
  const e = await v.mkdir(root, b('e'), { mode: 0o755 }, owner)
  await v.remove(d.ref, b('f3'))
  await v.rename(d.ref, b('f5'), e.ref, b('g5'))
  // f6 replaces f7: f7's object is gone, its vid unbound.
  await v.rename(d.ref, b('f6'), d.ref, b('f7'))
  t.equal(statSync(mapLog(stateDir)).size, mapBytes, 'the map wrote nothing since open: its binds are only in the change log')

  const crashed = crashCopy(stateDir, join(base, 'crashed'))
  const again = crashCopy(stateDir, join(base, 'crashed-again'))
  await v.close()

  // The edits the log carried: 12 binds (d, e, f0..f9) and 2 unbinds (f3 removed, f7 replaced).
  const map = await IdMap.open({ dir: join(replicationDir(again), String(EXPORT), 'map'), root: { id: 0n, gen: 0 } })
  const log = await ChangeLog.open({ dir: join(replicationDir(again), String(EXPORT), 'log'), exportId: EXPORT })
  t.equal(await recoverMap(map, log), 14, 'recovery redid the 14 edits logged after the last checkpoint')
  await log.close()
  await map.close()

  const two = await openPrimary(base, crashed)
  t.teardown(() => two.parts.vfs.close())
  const w = two.parts.vfs
  t.strictSame((await w.lookup(root, b('d'))).ref, d.ref, 'd: the same vid')
  t.strictSame((await w.lookup(root, b('e'))).ref, e.ref, 'e: the same vid')
  const dNow = await lookupAll(t, two, d.ref, ['f0', 'f1', 'f2', 'f4', 'f7', 'f8', 'f9'])
  for (const [n, ref] of dNow) t.strictSame(ref, made.get(n === 'f7' ? 'f6' : n), `${n}: the same vid`)
  t.strictSame((await w.lookup(e.ref, b('g5'))).ref, made.get('f5'), 'the renamed file: the same vid')
  for (const n of ['f3', 'f7']) await t.rejects(w.getattr(made.get(n)!), { code: 'ESTALE' }, `${n}'s vid is stale (its object is gone)`)
  t.equal((await w.read(made.get('f9')!, 0n, 100)).data.toString(), 'data 9', 'a handle from before the crash reads its file')
  const newer = await w.create(root, b('after'), file, owner)
  const highest = [...made.values(), d.ref, e.ref].reduce((m, r) => (r.id > m ? r.id : m), 0n)
  t.ok(newer.ref.id > highest, 'a vid made after the crash is new (the counter was redone too)')
})

t.test('trimming the log checkpoints the map first: the trimmed records were the only copy of their binds', async (t) => {
  const base = t.testdir()
  mkdirSync(join(base, 'data'))
  const stateDir = join(base, 'state')
  // Small segments, so that a trim deletes some.
  const one = await openPrimary(base, stateDir, 4096)
  const v = one.parts.vfs
  const made = new Map<string, FileRef>()
  for (let i = 0; i < 200; i++) {
    const name = `file-with-a-long-name-${String(i).padStart(4, '0')}`
    made.set(name, (await v.create(v.root(), b(name), file, owner)).ref)
  }
  const segments = one.parts.log.stats().segments
  t.ok(segments > 2, `${String(segments)} segments`)
  await one.parts.log.trim(one.parts.log.lastSeq())
  t.equal(one.parts.log.stats().segments, 1, 'trimmed to the newest segment')
  const crashed = crashCopy(stateDir, join(base, 'crashed'))
  await v.close()

  const two = await openPrimary(base, crashed, 4096)
  t.teardown(() => two.parts.vfs.close())
  let same = 0
  for (const [name, ref] of made) {
    const r = await two.parts.vfs.lookup(two.parts.vfs.root(), b(name))
    if (r.ref.id === ref.id && r.ref.gen === ref.gen) same++
  }
  t.equal(same, made.size, 'every vid came back')
})

t.test("a vid bound on first sight is flushed with a checkpoint: redoing the log starts after it", async (t) => {
  const base = t.testdir()
  mkdirSync(join(base, 'data'))
  const stateDir = join(base, 'state')
  const one = await openPrimary(base, stateDir)
  const v = one.parts.vfs
  await v.create(v.root(), b('through-nfs'), file, owner)
  await v.remove(v.root(), b('through-nfs'))
  // Made behind the server's back: a lookup binds it on first sight and flushes the map.
  writeFileSync(join(base, 'data', 'outside'), 'x')
  const outside = await v.lookup(v.root(), b('outside'))
  const seq = one.parts.log.lastSeq()
  const crashed = crashCopy(stateDir, join(base, 'crashed'))
  await v.close()

  const map = await IdMap.open({ dir: join(replicationDir(crashed), String(EXPORT), 'map'), root: { id: 0n, gen: 0 } })
  t.teardown(() => map.close())
  t.equal(map.loggedThrough(), seq, 'the flush recorded the log position it covers')
  t.strictSame(map.vidOf(map.local(outside.ref)!), outside.ref, 'and the first-sight bind')
})
