import t from 'tap'
import type { Attr } from '../../../vfs/types.ts'
import {
  accessBits,
  checkSetAttr,
  MAY_EXEC,
  MAY_READ,
  MAY_WRITE,
  mayRead,
  mayWrite,
  permits,
  stickyAllows,
} from '../../../server/nfs3/permission.ts'
import { ALICE, BOB, ROOT } from '../../helpers/nfs3-host.ts'

const T0 = { sec: 0, nsec: 0 }
function attr(type: Attr['type'], mode: number, uid = 1000, gid = 1000): Attr {
  return { type, mode, nlink: 1, uid, gid, size: 0n, used: 0n, rdev: { major: 0, minor: 0 }, fileid: 5n, gen: 1, atime: T0, mtime: T0, ctime: T0 }
}
const CAROL = { uid: 1002, gid: 1002, gids: [1002, 1000] } // in alice's group by a supplementary gid
const masks: [string, number][] = [
  ['r', MAY_READ],
  ['w', MAY_WRITE],
  ['x', MAY_EXEC],
]

t.test('owner, group (primary or supplementary), other, each r/w/x bit alone', async (t) => {
  for (const [cls, shift] of [['owner', 6], ['group', 3], ['other', 0]] as const) {
    for (const [name, mask] of masks) {
      const a = attr('file', mask << shift, 1000, 1000)
      t.equal(permits(ALICE, a, mask), cls === 'owner', `owner, ${cls} ${name}`)
      t.equal(permits(BOB, a, mask), cls === 'other', `other user, ${cls} ${name}`)
      t.equal(permits(CAROL, a, mask), cls === 'group', `supplementary group, ${cls} ${name}`)
      t.equal(permits({ uid: 1003, gid: 1000, gids: [] }, a, mask), cls === 'group', `primary group, ${cls} ${name}`)
    }
  }
})

t.test('the first class that applies decides (owner with 0o077 is denied)', async (t) => {
  t.notOk(permits(ALICE, attr('file', 0o077), MAY_READ))
  t.notOk(permits(CAROL, attr('file', 0o707), MAY_READ), 'group member with group bits 0')
})

t.test('root (after squashing, uid 0 is root) bypasses read/write; exec needs some x bit', async (t) => {
  const f = attr('file', 0o000)
  t.ok(permits(ROOT, f, MAY_READ | MAY_WRITE))
  t.notOk(permits(ROOT, f, MAY_EXEC), 'no x bit anywhere')
  t.ok(permits(ROOT, attr('file', 0o001), MAY_EXEC), 'other x bit suffices')
  t.ok(permits(ROOT, attr('dir', 0o000), MAY_EXEC), 'search any directory')
  const squashed = { uid: 65534, gid: 65534, gids: [] }
  t.notOk(permits(squashed, f, MAY_READ), 'squashed root is nobody')
})

t.test('READ/WRITE owner override; execute grants reading a regular file', async (t) => {
  const f = attr('file', 0o000)
  t.ok(mayRead(ALICE, f), 'owner reads a 000 file')
  t.ok(mayWrite(ALICE, f), 'owner writes a 000 file')
  t.notOk(mayRead(BOB, f))
  t.notOk(mayWrite(BOB, f))
  t.ok(mayRead(BOB, attr('file', 0o001)), 'execute-only: read allowed (demand paging)')
  t.notOk(mayRead(BOB, attr('fifo', 0o001)), 'not for non-regular files')
  t.ok(mayWrite(BOB, attr('file', 0o002)))
})

t.test('sticky directories', async (t) => {
  const dir = attr('dir', 0o1777, 0, 0)
  t.ok(stickyAllows(ALICE, dir, attr('file', 0o644, 1000)), 'file owner')
  t.notOk(stickyAllows(BOB, dir, attr('file', 0o644, 1000)), 'someone else')
  t.ok(stickyAllows(ROOT, dir, attr('file', 0o644, 1000)), 'root')
  t.ok(stickyAllows(BOB, attr('dir', 0o1777, 1001), attr('file', 0o644, 1000)), 'directory owner')
  t.ok(stickyAllows(BOB, attr('dir', 0o777, 0), attr('file', 0o644, 1000)), 'not sticky')
})

t.test('SETATTR rules', async (t) => {
  const f = attr('file', 0o644)
  t.same(checkSetAttr(BOB, f, { mode: 0o600 }), { ok: false, status: 'PERM' }, 'chmod by non-owner')
  t.same(checkSetAttr(ALICE, f, { mode: 0o600 }), { ok: true, set: { mode: 0o600 } }, 'chmod by owner')
  t.same(checkSetAttr(ALICE, f, { uid: 1001 }), { ok: false, status: 'PERM' }, 'chown by non-root')
  t.same(checkSetAttr(ALICE, f, { uid: 1000 }), { ok: true, set: { uid: 1000 } }, 'owner "chowns" to himself')
  t.match(checkSetAttr(ROOT, f, { uid: 1001 }), { ok: true }, 'chown by root')
  t.same(checkSetAttr(ALICE, f, { gid: 1001 }), { ok: false, status: 'PERM' }, 'chgrp to a group not his')
  t.match(checkSetAttr(CAROL, attr('file', 0o644, 1002, 1002), { gid: 1000 }), { ok: true }, 'chgrp to a supplementary group')
  t.same(checkSetAttr(BOB, f, { gid: 1001 }), { ok: false, status: 'PERM' }, 'chgrp by non-owner')
  t.same(checkSetAttr(BOB, f, { size: 0n }), { ok: false, status: 'ACCES' }, 'truncate without write permission')
  t.match(checkSetAttr(ALICE, attr('file', 0o444), { size: 0n }), { ok: true }, 'owner truncates a read-only file')
  t.match(checkSetAttr(BOB, attr('file', 0o666), { size: 0n }), { ok: true }, 'anyone with write permission')
  t.same(checkSetAttr(BOB, f, { mtime: { sec: 1, nsec: 0 } }), { ok: false, status: 'PERM' }, 'explicit time by non-owner')
  t.same(checkSetAttr(BOB, f, { mtime: 'now' }), { ok: false, status: 'ACCES' }, 'touch without write permission')
  t.match(checkSetAttr(BOB, attr('file', 0o666), { mtime: 'now', atime: 'now' }), { ok: true }, 'touch with write permission')
  t.same(checkSetAttr(BOB, attr('file', 0o666), { mtime: 'now', atime: { sec: 1, nsec: 0 } }), { ok: false, status: 'PERM' }, 'mixed needs ownership')
  t.same(checkSetAttr(ALICE, attr('file', 0o644, 1000, 5), { mode: 0o2755 }), { ok: true, set: { mode: 0o755 } }, 'setgid dropped for non-member')
  t.same(checkSetAttr(ROOT, attr('file', 0o6755), { gid: 5 }), { ok: true, set: { gid: 5, mode: 0o755 } }, 'chown kills setuid/setgid (group-exec)')
  t.same(checkSetAttr(ROOT, attr('dir', 0o2755), { gid: 5 }), { ok: true, set: { gid: 5 } }, 'not on directories')
  t.same(checkSetAttr(BOB, attr('file', 0o6777), { size: 0n }), { ok: true, set: { size: 0n, mode: 0o777 } }, 'truncate by non-root kills setuid/setgid (group-exec)')
  t.same(checkSetAttr(ALICE, attr('file', 0o2767), { size: 0n }), { ok: true, set: { size: 0n } }, 'setgid without group exec stays')
  t.same(checkSetAttr(ROOT, attr('file', 0o6777), { size: 0n }), { ok: true, set: { size: 0n } }, 'root keeps them (CAP_FSETID)')
})

t.test('ACCESS bits as knfsd nfsd_access computes them', async (t) => {
  const ALL = 0x3f
  t.equal(accessBits(ALICE, attr('file', 0o700), ALL, false), 0x01 | 0x04 | 0x08 | 0x20, 'owner rwx file: no LOOKUP/DELETE')
  t.equal(accessBits(ALICE, attr('dir', 0o700), ALL, false), 0x01 | 0x02 | 0x04 | 0x08 | 0x10, 'owner rwx dir: no EXECUTE')
  t.equal(accessBits(ALICE, attr('dir', 0o700), 0x01, false), 0x01, 'only the bits asked')
  t.equal(accessBits(ALICE, attr('dir', 0o600), ALL, false), 0x01, 'dir MODIFY/EXTEND/DELETE need search too')
  t.equal(accessBits(ALICE, attr('file', 0o700), ALL, true), 0x01 | 0x20, 'read-only export: no MODIFY/EXTEND')
  t.equal(accessBits(ALICE, attr('char', 0o600), ALL, true), 0x01 | 0x04 | 0x08, 'devices ignore the read-only export')
  t.equal(accessBits(BOB, attr('file', 0o000), ALL, false), 0, 'nothing')
  t.equal(accessBits(ALICE, attr('file', 0o000), 0x01, false), 0, 'no owner override in ACCESS')
  t.equal(accessBits(ROOT, attr('file', 0o000), ALL, false), 0x01 | 0x04 | 0x08, 'root: no EXECUTE without an x bit')
})
