/*
 * The standby's side of a full resync (resync-target.ts) for a directory cut
 * into several RESYNC_DIR parts: its copy of the directory is read once for
 * the whole directory, not once per part (the listing is kept between
 * parts), and each part still removes the extras in its own cookie range.
 */
import t from 'tap'
import { readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ResyncApplier } from '../../../server/replication/resync-target.ts'
import type { ResyncAttr, ResyncEntry } from '../../../server/replication/resync-target.ts'
import { Applier } from '../../../vfs/replica/applier.ts'
import { nameCookie } from '../../../vfs/replica/dir-cookies.ts'
import { IdMap, ROOT_VID } from '../../../vfs/replica/id-map.ts'
import { LocalVfs } from '../../../vfs/local/local-vfs.ts'
import type { DirPage, FileRef } from '../../../vfs/types.ts'

/** The standby's backend, counting directory reads from the start (cookie 0). */
class CountingVfs extends LocalVfs {
  starts = 0
  override readdir(dir: FileRef, cookie: bigint, max: number): Promise<DirPage> {
    if (cookie === 0n) this.starts++
    return super.readdir(dir, cookie, max)
  }
}

const MAX_COOKIE = (1n << 64n) - 1n
const time = { sec: 1_700_000_000, nsec: 0 }
const fileAttr: ResyncAttr = { type: 'file', mode: 0o644, uid: 0, gid: 0, size: 0n, atime: time, mtime: time, rdev: { major: 0, minor: 0 }, target: Buffer.alloc(0) }
const dirAttr: ResyncAttr = { ...fileAttr, type: 'dir', mode: 0o755 }

t.test('a directory in four parts: read once, every part\'s extras removed, every entry made', async (t) => {
  const dir = t.testdir({ copy: {}, state: {} })
  const copy = join(dir, 'copy')
  // Extras the primary does not have, spread over every part's range.
  for (let i = 0; i < 200; i++) writeFileSync(join(copy, `extra-${String(i)}`), 'x')
  const backend = new CountingVfs({ root: copy, stateDir: join(dir, 'state', 'local') })
  t.teardown(() => backend.close())
  const map = await IdMap.open({ dir: join(dir, 'state', 'map'), root: backend.root(), epoch: 1 })
  t.teardown(() => map.close())
  const target = new ResyncApplier({ backend, map, applier: new Applier({ backend, map }) })
  const entries: (ResyncEntry & { cookie: bigint })[] = Array.from({ length: 400 }, (_, i) => {
    const name = Buffer.from(`entry-${String(i)}`)
    return { name, cookie: nameCookie(name), ref: { id: (1n << 40n) | BigInt(i + 2), gen: 1 }, attr: fileAttr, verify: false }
  }).sort((a, b) => (a.cookie < b.cookie ? -1 : a.cookie > b.cookie ? 1 : 0))
  await target.begin()
  const parts = 4
  const per = entries.length / parts
  let from = 0n
  for (let p = 0; p < parts; p++) {
    const slice = entries.slice(p * per, (p + 1) * per)
    const to = p === parts - 1 ? MAX_COOKIE : (slice.at(-1)?.cookie ?? MAX_COOKIE)
    const needs = await target.dir({ dir: ROOT_VID, dirAttr, cookieFrom: from, cookieTo: to, entries: slice })
    t.same(needs, [], `part ${String(p + 1)}: empty files need no data`)
    // What this part covers is done: its extras gone, the later parts' still there.
    const left = readdirSync(copy).filter((n) => n.startsWith('extra-')).map((n) => nameCookie(Buffer.from(n)))
    t.notOk(left.some((c) => c <= to), `part ${String(p + 1)}: no extra left in (0, ${to.toString(16)}]`)
    from = to
  }
  t.same(readdirSync(copy).sort(), entries.map((e) => e.name.toString()).sort(), 'the directory is the primary\'s: 400 entries, no extra')
  t.equal(backend.starts, 1, 'the standby\'s copy was read once for four parts')
  // A new resync reads it again (the kept listing is for one resync only).
  await target.begin()
  await target.dir({ dir: ROOT_VID, dirAttr, cookieFrom: 0n, cookieTo: MAX_COOKIE, entries })
  t.equal(backend.starts, 2, 'a new resync reads afresh')
})
