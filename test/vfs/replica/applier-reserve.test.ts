/*
 * A standby applies what the primary acknowledged, whoever the caller was: on an engine backend
 * whose free space, for an ordinary user, is all root's reserve, the applier's create, write,
 * link and rename still succeed (the applier acts as root), where the same write by the same
 * user straight to the engine gets ENOSPC. The image is e2fsck -fn clean after.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { openEngine } from '../../../vfs/engine/fs/assemble.ts'
import { Applier } from '../../../vfs/replica/applier.ts'
import type { ChangeTimes } from '../../../vfs/replica/change.ts'
import { IdMap, ROOT_VID } from '../../../vfs/replica/id-map.ts'
import type { FileRef } from '../../../vfs/types.ts'
import { mkfs, scratch } from '../engine/format-helpers.ts'

const b = (s: string): Buffer => Buffer.from(s)
const V = (n: number): FileRef => ({ id: (1n << 40n) | BigInt(n), gen: 1 })
const T = { sec: 1_600_000_000, nsec: 7 }
const times = (...refs: FileRef[]): ChangeTimes[] => refs.map((ref) => ({ ref, atime: T, mtime: T }))
const USER = { uid: 1000, gid: 1000 }

t.test('the applier writes into root\'s reserve where the user it replicates could not', async (t) => {
  const dir = scratch(t, 'applier-reserve')
  const image = join(dir, 'r.img')
  // 8 MiB of 1 KiB blocks, half of them kept for root.
  mkfs(image, 8 << 20, ['-b', '1024', '-m', '50', '-J', 'size=1'])
  const engine = await openEngine(image)
  const root = engine.root()
  // The user fills everything that is not the reserve.
  const fill = await engine.create(root, b('fill'), { how: 'guarded', attr: { mode: 0o644 } }, USER)
  const chunk = Buffer.alloc(64 * 1024, 0x61)
  let offset = 0n
  let code = ''
  for (let i = 0; i < 200 && code === ''; i++) {
    try {
      const w = await engine.write(fill.ref, offset, chunk, 'file_sync', USER)
      offset += BigInt(w.count)
    } catch (err) {
      code = (err as { code?: string }).code ?? String(err)
    }
  }
  t.equal(code, 'ENOSPC', `the user's own write stops at ENOSPC after ${offset} bytes`)
  await t.rejects(engine.write(fill.ref, offset, chunk, 'file_sync', USER), { code: 'ENOSPC' }, 'and stays refused')

  const map = await IdMap.open({ dir: join(dir, 'map'), root })
  t.teardown(() => map.close())
  const applier = new Applier({ backend: engine, map })
  const data = Buffer.alloc(256 * 1024, 0x62)
  await applier.apply(1n, { op: 'mkdir', obj: { dir: ROOT_VID, name: b('d'), ref: V(1), mode: 0o755, uid: USER.uid, gid: USER.gid }, times: times(V(1), ROOT_VID) })
  await applier.apply(2n, { op: 'create', obj: { dir: V(1), name: b('f'), ref: V(2), mode: 0o644, uid: USER.uid, gid: USER.gid }, exclusive: null, times: times(V(2), V(1)) })
  await applier.apply(3n, { op: 'write', ref: V(2), offset: 0n, length: data.length, data, times: times(V(2)) })
  await applier.apply(4n, { op: 'link', ref: V(2), dir: ROOT_VID, name: b('hard'), times: times(V(2), ROOT_VID) })
  await applier.apply(5n, { op: 'rename', fromDir: V(1), fromName: b('f'), toDir: ROOT_VID, toName: b('moved'), times: times(V(2), V(1), ROOT_VID) })
  t.equal(await applier.flush(), 5n, 'all five changes applied and durable')
  const moved = await engine.lookup(root, b('moved'))
  t.match(moved.attr, { size: BigInt(data.length), nlink: 2, uid: USER.uid, gid: USER.gid }, 'the file is the primary\'s: its owner, its size, two names')
  t.ok((await engine.read(moved.ref, 0n, data.length)).data.equals(data), 'its data, read back from the reserve')
  await map.close()
  await engine.close()
  const fsck = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' })
  t.equal(fsck.status, 0, 'e2fsck -fn: clean')
  if (fsck.status !== 0) t.comment(fsck.stdout)
})
