/*
 * The permission matrix of a local export, as Linux knfsd enforces it for
 * AUTH_SYS (issue 3 point 4): owner/group/other × read/write/execute, with
 * the group matched by the primary gid or a supplementary one, under
 * no_root_squash, root_squash and all_squash (anonuid/anongid), sticky
 * directories, SETATTR ownership rules, read-only exports, ACCESS answers,
 * and the owner of new objects (the server runs as root). Objects are made
 * on the host with chmod/chown; every request carries its own credential.
 */
import t from 'tap'
import type { Test } from 'tap'
import fs from 'node:fs'
import { join } from 'node:path'
import type { AuthSys } from '../../client/rpc/auth.ts'
import { NO_ATTRS } from '../helpers/e2e.ts'
import { A, cred, FILE_SYNC, Nfs3, NFS3, S } from '../helpers/local.ts'
import { startServer } from '../helpers/server.ts'

const OWNER = cred(1000, 1000)
const GROUP = cred(1001, 1000) // in the file's group by its primary gid
const SUPP = cred(1002, 2000, [1000]) // in the file's group by a supplementary gid
const OTHER = cred(1003, 2000, [3000])
const ROOT = cred(0, 0)

type Klass = 'owner' | 'group' | 'other'
const SHIFT: Record<Klass, number> = { owner: 6, group: 3, other: 0 }
const CALLERS: readonly [string, AuthSys, Klass][] = [['owner', OWNER, 'owner'], ['group', GROUP, 'group'], ['supplementary group', SUPP, 'group'], ['other', OTHER, 'other']]
const BITS = { r: 4, w: 2, x: 1 } as const

function mk(path: string, mode: number, uid = 1000, gid = 1000, dir = false): void {
  if (dir) fs.mkdirSync(path)
  else fs.writeFileSync(path, 'data')
  fs.chownSync(path, uid, gid)
  fs.chmodSync(path, mode)
}

/** One server, one host tree per export, each export with other squash options. */
async function setup(t: Test): Promise<{ nfs: Nfs3; base: string; roots: Record<string, Buffer> }> {
  const base = t.testdir({ nr: {}, rs: {}, as: {}, as2: {}, ro: {} })
  for (const e of ['nr', 'rs', 'as', 'as2', 'ro']) {
    const d = join(base, e)
    for (const k of ['owner', 'group', 'other'] as const) {
      for (const [bit, v] of Object.entries(BITS)) mk(join(d, `f-${k}-${bit}`), v << SHIFT[k])
      for (const [bit, v] of [...Object.entries(BITS), ['wx', 3] as const]) {
        mk(join(d, `d-${k}-${bit}`), v << SHIFT[k], 1000, 1000, true)
        mk(join(d, `d-${k}-${bit}`, 'x'), 0o666)
      }
    }
    mk(join(d, 'f-000'), 0o000)
    mk(join(d, 'f-100'), 0o100)
    mk(join(d, 'f-644'), 0o644)
    mk(join(d, 'f-666'), 0o666)
    mk(join(d, 'open'), 0o777, 0, 0, true)
    mk(join(d, 'setgid'), 0o2777, 0, 2500, true)
    mk(join(d, 'sticky'), 0o1777, 1000, 1000, true)
    mk(join(d, 'sticky', 'by-1001'), 0o666, 1001, 1001)
    mk(join(d, 'sticky', 'by-1001b'), 0o666, 1001, 1001)
    mk(join(d, 'sticky', 'by-1003'), 0o666, 1003, 2000)
  }
  const s = await startServer(
    t,
    `${join(base, 'nr')} *(rw,insecure,no_root_squash)\n` +
      `${join(base, 'rs')} *(rw,insecure,root_squash,anonuid=3000,anongid=3001)\n` +
      `${join(base, 'as')} *(rw,insecure,all_squash,anonuid=1000,anongid=1000)\n` +
      `${join(base, 'as2')} *(rw,insecure,all_squash,anonuid=4000,anongid=4000)\n` +
      `${join(base, 'ro')} *(ro,insecure,no_root_squash)\n`,
  )
  const nfs = await Nfs3.connect(t, s.port)
  const roots: Record<string, Buffer> = {}
  for (const e of ['nr', 'rs', 'as', 'as2', 'ro']) roots[e] = await nfs.mount(join(base, e))
  return { nfs, base, roots }
}

function rootOf(roots: Record<string, Buffer>, e: string): Buffer {
  const r = roots[e]
  if (r === undefined) throw new Error(`no export ${e}`)
  return r
}

t.test('files: owner/group/other × r/w/x for READ, WRITE and ACCESS (no_root_squash)', async (t) => {
  const { nfs, roots } = await setup(t)
  const root = rootOf(roots, 'nr')
  for (const k of ['owner', 'group', 'other'] as const) {
    for (const [bit, v] of Object.entries(BITS)) {
      const name = `f-${k}-${bit}`
      const f = await nfs.walk(root, name)
      for (const [who, c, klass] of CALLERS) {
        const mine = klass === k ? v : 0
        // knfsd: READ and WRITE carry NFSD_MAY_OWNER_OVERRIDE; execute permission grants READ of a file.
        const read = who === 'owner' || (mine & 5) !== 0 ? S.OK : S.ACCES
        const write = who === 'owner' || (mine & 2) !== 0 ? S.OK : S.ACCES
        const access = ((mine & 4) !== 0 ? A.READ : 0) | ((mine & 1) !== 0 ? A.EXECUTE : 0) | ((mine & 2) !== 0 ? A.MODIFY | A.EXTEND : 0)
        t.equal((await nfs.read(f, 0n, 10, c)).status, read, `${name} READ by ${who}`)
        t.equal((await nfs.write(f, 0n, Buffer.from('data'), FILE_SYNC, c)).status, write, `${name} WRITE by ${who}`)
        t.strictSame(await nfs.access(f, A.ALL, c), { status: S.OK, access }, `${name} ACCESS by ${who}`)
      }
    }
  }
  // Root: reads and writes anything; executes only what has some x bit.
  const f000 = await nfs.walk(root, 'f-000')
  t.equal((await nfs.read(f000, 0n, 10, ROOT)).status, S.OK, 'root READs mode 000')
  t.equal((await nfs.write(f000, 0n, Buffer.from('data'), FILE_SYNC, ROOT)).status, S.OK, 'root WRITEs mode 000')
  t.strictSame(await nfs.access(f000, A.ALL, ROOT), { status: S.OK, access: A.READ | A.MODIFY | A.EXTEND }, 'root ACCESS of 000: no EXECUTE')
  t.strictSame(await nfs.access(await nfs.walk(root, 'f-100'), A.ALL, ROOT), { status: S.OK, access: A.READ | A.MODIFY | A.EXTEND | A.EXECUTE })
  t.strictSame(await nfs.access(f000, A.READ, ROOT), { status: S.OK, access: A.READ }, 'never a bit not asked for')
  t.equal((await nfs.read(f000, 0n, 10, OWNER)).status, S.OK, 'the owner READs his own mode-000 file (owner override)')
  t.strictSame(await nfs.access(f000, A.ALL, OWNER), { status: S.OK, access: 0 }, 'but ACCESS answers 0 for him')
})

t.test('directories: owner/group/other × r/w/x for LOOKUP, READDIR, CREATE, REMOVE and ACCESS', async (t) => {
  const { nfs, roots, base } = await setup(t)
  const root = rootOf(roots, 'nr')
  for (const k of ['owner', 'group', 'other'] as const) {
    for (const [bit, v] of [...Object.entries(BITS), ['wx', 3] as const]) {
      const name = `d-${k}-${bit}`
      const d = await nfs.walk(root, name)
      for (const [who, c, klass] of CALLERS) {
        const mine = klass === k ? v : 0
        const search = (mine & 1) !== 0 ? S.OK : S.ACCES
        const list = (mine & 4) !== 0 ? S.OK : S.ACCES
        const change = (mine & 3) === 3 ? S.OK : S.ACCES
        const access = ((mine & 4) !== 0 ? A.READ : 0) | ((mine & 1) !== 0 ? A.LOOKUP : 0) | ((mine & 3) === 3 ? A.MODIFY | A.EXTEND | A.DELETE : 0)
        t.equal((await nfs.lookup(d, 'x', c)).status, search, `${name} LOOKUP by ${who}`)
        t.equal((await nfs.readdir(d, 0n, Buffer.alloc(8), 4096, c)).status, list, `${name} READDIR by ${who}`)
        const made = `new-${c.uid}`
        t.equal((await nfs.create(d, made, c)).status, change, `${name} CREATE by ${who}`)
        t.equal(fs.existsSync(join(base, 'nr', name, made)), change === S.OK, 'on the host exactly when allowed')
        if (change === S.OK) t.equal(await nfs.remove(d, made, c), S.OK, `${name} REMOVE by ${who}`)
        else t.equal(await nfs.remove(d, 'x', c), S.ACCES, `${name} REMOVE by ${who}`)
        t.strictSame(await nfs.access(d, A.ALL, c), { status: S.OK, access }, `${name} ACCESS by ${who}`)
      }
      t.ok(fs.existsSync(join(base, 'nr', name, 'x')), 'x was never removed')
    }
  }
  const d0 = await nfs.walk(root, 'd-owner-r')
  t.equal((await nfs.lookup(d0, 'x', ROOT)).status, S.OK, 'root searches any directory')
  t.strictSame(await nfs.access(d0, A.ALL, ROOT), { status: S.OK, access: A.READ | A.LOOKUP | A.MODIFY | A.EXTEND | A.DELETE })
})

t.test('root_squash, all_squash and anonuid/anongid', async (t) => {
  const { nfs, roots, base } = await setup(t)
  const rs = rootOf(roots, 'rs')
  // root_squash: root is uid 3000 / gid 3001, so "other" on these files.
  t.equal((await nfs.read(await nfs.walk(rs, 'f-owner-r'), 0n, 10, ROOT)).status, S.ACCES, 'squashed root cannot READ 0400')
  t.equal((await nfs.read(await nfs.walk(rs, 'f-other-r'), 0n, 10, ROOT)).status, S.OK, 'but READs 0004')
  t.equal((await nfs.write(await nfs.walk(rs, 'f-644'), 0n, Buffer.from('data'), FILE_SYNC, ROOT)).status, S.ACCES, 'nor WRITEs 0644')
  t.equal((await nfs.lookup(await nfs.walk(rs, 'd-owner-x'), 'x', ROOT)).status, S.ACCES, 'nor searches 0100')
  t.strictSame(await nfs.access(await nfs.walk(rs, 'f-000'), A.ALL, ROOT), { status: S.OK, access: 0 })
  t.equal(await nfs.setattr(await nfs.walk(rs, 'f-666'), { uid: 0 }, ROOT), S.PERM, 'nor chowns')
  t.equal((await nfs.read(await nfs.walk(rs, 'f-owner-r'), 0n, 10, OWNER)).status, S.OK, 'other users are not squashed')
  const made = await nfs.create(await nfs.walk(rs, 'open'), 'by-root', ROOT)
  t.equal(made.status, S.OK)
  const st = fs.statSync(join(base, 'rs', 'open', 'by-root'))
  t.strictSame([st.uid, st.gid], [3000, 3001], 'squashed root creates as anonuid:anongid')
  t.equal((await nfs.create(rs, 'at-root', ROOT)).status, S.ACCES, 'and cannot create in the root-owned 0755 export root')
  // A supplementary gid 0 is squashed too.
  fs.chmodSync(join(base, 'rs', 'f-group-r'), 0o040)
  fs.chownSync(join(base, 'rs', 'f-group-r'), 1000, 0)
  t.equal((await nfs.read(await nfs.walk(rs, 'f-group-r'), 0n, 10, cred(1003, 2000, [0]))).status, S.ACCES, 'supplementary gid 0 → anongid')

  // all_squash anonuid=1000: everyone is the owner 1000:1000 of these files.
  const as = rootOf(roots, 'as')
  for (const [who, c] of [['other', OTHER], ['root', ROOT]] as const) {
    t.equal((await nfs.read(await nfs.walk(as, 'f-owner-r'), 0n, 10, c)).status, S.OK, `${who} squashed to 1000 READs 0400`)
    t.strictSame(await nfs.access(await nfs.walk(as, 'f-owner-w'), A.ALL, c), { status: S.OK, access: A.MODIFY | A.EXTEND }, `${who} ACCESS as 1000`)
    t.equal(await nfs.setattr(await nfs.walk(as, 'f-666'), { mode: 0o664 }, c), S.OK, `${who} chmods as the owner`)
    t.equal((await nfs.create(await nfs.walk(as, 'open'), `by-${c.uid}`, c)).status, S.OK)
    const s2 = fs.statSync(join(base, 'as', 'open', `by-${c.uid}`))
    t.strictSame([s2.uid, s2.gid], [1000, 1000], `${who} creates as 1000:1000`)
  }
  t.equal(await nfs.setattr(await nfs.walk(as, 'f-666'), { uid: 1003 }, ROOT), S.PERM, 'squashed root cannot chown')

  // all_squash anonuid=4000: supplementary groups are dropped, so group bits never apply.
  const as2 = rootOf(roots, 'as2')
  t.equal((await nfs.read(await nfs.walk(as2, 'f-group-r'), 0n, 10, SUPP)).status, S.ACCES, 'supplementary gids dropped under all_squash')
  t.equal((await nfs.read(await nfs.walk(as2, 'f-group-r'), 0n, 10, OWNER)).status, S.ACCES, 'even the real owner is 4000 there')
  t.equal((await nfs.read(await nfs.walk(as2, 'f-other-r'), 0n, 10, OWNER)).status, S.OK)
  t.equal((await nfs.mkdir(await nfs.walk(as2, 'open'), 'dir', OWNER)).status, S.OK)
  const s3 = fs.statSync(join(base, 'as2', 'open', 'dir'))
  t.strictSame([s3.uid, s3.gid], [4000, 4000], 'MKDIR under all_squash belongs to anonuid:anongid')
})

t.test('new objects belong to the caller (the server runs as root)', async (t) => {
  const { nfs, roots, base } = await setup(t)
  const root = rootOf(roots, 'nr')
  const open = await nfs.walk(root, 'open')
  const owner = (p: string): number[] => {
    const st = fs.lstatSync(join(base, 'nr', p))
    return [st.uid, st.gid]
  }
  t.equal((await nfs.create(open, 'g', GROUP)).status, S.OK)
  t.strictSame(owner('open/g'), [1001, 1000], 'CREATE: uid and primary gid of the caller')
  t.equal((await nfs.mkdir(open, 'sd', SUPP)).status, S.OK)
  t.strictSame(owner('open/sd'), [1002, 2000], 'MKDIR: uid and primary gid of the caller')
  const sl = await nfs.call(NFS3.NFSPROC3_SYMLINK, { where: { dir: { data: open }, name: Buffer.from('ln') }, symlink: { symlink_attributes: NO_ATTRS, symlink_data: Buffer.from('g') } }, OTHER)
  t.equal(sl.status, S.OK)
  t.strictSame(owner('open/ln'), [1003, 2000], 'SYMLINK: the caller')
  t.equal((await nfs.create(open, 'r', ROOT)).status, S.OK)
  t.strictSame(owner('open/r'), [0, 0], 'root stays root under no_root_squash')
  t.equal((await nfs.create(open, 'r2', ROOT, { uid: 1234, gid: 5678 })).status, S.OK)
  t.strictSame(owner('open/r2'), [1234, 5678], 'root may set the owner in CREATE')
  t.equal((await nfs.create(open, 'o2', OTHER, { uid: 1234, gid: 5678 })).status, S.OK)
  t.strictSame(owner('open/o2'), [1003, 2000], "a user's uid/gid in CREATE is ignored (knfsd)")
  const sg = await nfs.walk(root, 'setgid')
  t.equal((await nfs.create(sg, 'f', SUPP)).status, S.OK)
  t.strictSame(owner('setgid/f'), [1002, 2500], 'in a setgid directory the gid is the directory gid')
  t.equal((await nfs.mkdir(sg, 'sub', OTHER)).status, S.OK)
  t.strictSame(owner('setgid/sub'), [1003, 2500])
  t.equal(fs.statSync(join(base, 'nr', 'setgid', 'sub')).mode & 0o2000, 0o2000, 'and a subdirectory inherits S_ISGID')
})

t.test('sticky directories', async (t) => {
  const { nfs, roots, base } = await setup(t)
  const sticky = await nfs.walk(rootOf(roots, 'nr'), 'sticky')
  const has = (n: string): boolean => fs.existsSync(join(base, 'nr', 'sticky', n))
  t.equal(await nfs.remove(sticky, 'by-1001', OTHER), S.PERM, "another user's file: REMOVE → PERM")
  t.equal(await nfs.rename(sticky, 'by-1001', sticky, 'moved', OTHER), S.PERM, 'RENAME → PERM')
  t.equal(await nfs.rename(sticky, 'by-1003', sticky, 'by-1001', OTHER), S.PERM, 'replacing it by RENAME → PERM')
  t.ok(has('by-1001') && has('by-1003') && !has('moved'), 'nothing moved on the host')
  t.equal(await nfs.rename(sticky, 'by-1003', sticky, 'mine', OTHER), S.OK, 'his own file: RENAME OK')
  t.equal(await nfs.remove(sticky, 'mine', OTHER), S.OK, 'REMOVE OK')
  t.equal(await nfs.remove(sticky, 'by-1001', OWNER), S.OK, "the directory's owner removes anyone's file")
  t.equal(await nfs.remove(sticky, 'by-1001b', ROOT), S.OK, 'root too')
  t.ok(!has('by-1001') && !has('by-1001b') && !has('mine'))
  t.equal((await nfs.create(sticky, 'anyone', OTHER)).status, S.OK, 'anyone may create in 1777')
})

t.test('SETATTR: chmod, chown, times and size', async (t) => {
  const { nfs, roots, base } = await setup(t)
  const root = rootOf(roots, 'nr')
  const f = await nfs.walk(root, 'f-666')
  const f644 = await nfs.walk(root, 'f-644')
  const host = (n: string): fs.Stats => fs.statSync(join(base, 'nr', n))
  t.equal(await nfs.setattr(f, { mode: 0o777 }, OTHER), S.PERM, 'chmod by a non-owner → PERM')
  t.equal(await nfs.setattr(f, { mode: 0o777 }, GROUP), S.PERM, 'even by a group member with write permission')
  t.equal(host('f-666').mode & 0o7777, 0o666)
  t.equal(await nfs.setattr(f, { mode: 0o640 }, OWNER), S.OK, 'chmod by the owner')
  t.equal(host('f-666').mode & 0o7777, 0o640)
  t.equal(await nfs.setattr(f, { uid: 1003 }, OWNER), S.PERM, 'chown by a non-root owner → PERM')
  t.equal(await nfs.setattr(f, { uid: 1000 }, OWNER), S.OK, 'chown to himself is allowed')
  t.equal(await nfs.setattr(f, { gid: 2000 }, OWNER), S.PERM, 'chgrp to a group he is not in → PERM')
  t.equal(await nfs.setattr(f, { gid: 2000 }, cred(1000, 1000, [2000])), S.OK, 'chgrp to one of his groups')
  t.equal(host('f-666').gid, 2000)
  t.equal(await nfs.setattr(f, { uid: 1003, gid: 1003 }, ROOT), S.OK, 'root chowns')
  t.strictSame([host('f-666').uid, host('f-666').gid], [1003, 1003])
  fs.chmodSync(join(base, 'nr', 'f-666'), 0o666)
  t.equal(await nfs.setattr(f644, { size: 0n }, OTHER), S.ACCES, 'truncate without write permission → ACCES')
  t.equal(host('f-644').size, 4)
  t.equal(await nfs.setattr(f644, { size: 1n }, OWNER), S.OK, 'the owner truncates')
  t.equal(host('f-644').size, 1)
  t.equal(await nfs.setattr(f644, { mtime: { set_it: 1 } }, OTHER), S.ACCES, 'touch (server time) without write permission → ACCES')
  t.equal(await nfs.setattr(f, { mtime: { set_it: 1 } }, OWNER), S.OK, 'touch with write permission (not the owner, 1003 owns it now)')
  t.equal(await nfs.setattr(f, { mtime: { set_it: 2, mtime: { seconds: 1000, nseconds: 0 } } }, OWNER), S.PERM, 'explicit times by a non-owner → PERM')
  t.equal(await nfs.setattr(f, { mtime: { set_it: 2, mtime: { seconds: 1000, nseconds: 0 } } }, OTHER), S.OK, 'explicit times by the owner')
  t.equal(host('f-666').mtimeMs, 1_000_000)
})

t.test('a read-only export refuses every change with ROFS', async (t) => {
  const { nfs, roots, base } = await setup(t)
  const ro = rootOf(roots, 'ro')
  const f = await nfs.walk(ro, 'f-666')
  const open = await nfs.walk(ro, 'open')
  t.equal((await nfs.read(f, 0n, 10, ROOT)).status, S.OK, 'READ works')
  t.equal((await nfs.write(f, 0n, Buffer.from('XXXX'), FILE_SYNC, ROOT)).status, S.ROFS, 'WRITE → ROFS')
  t.equal((await nfs.create(open, 'n', ROOT)).status, S.ROFS, 'CREATE → ROFS')
  t.equal((await nfs.mkdir(open, 'n', ROOT)).status, S.ROFS, 'MKDIR → ROFS')
  t.equal(await nfs.setattr(f, { mode: 0o600 }, ROOT), S.ROFS, 'SETATTR → ROFS')
  t.equal(await nfs.remove(ro, 'f-666', ROOT), S.ROFS, 'REMOVE → ROFS')
  t.equal(await nfs.rmdir(ro, 'open', ROOT), S.ROFS, 'RMDIR → ROFS')
  t.equal(await nfs.rename(ro, 'f-666', ro, 'g', ROOT), S.ROFS, 'RENAME → ROFS')
  t.strictSame(await nfs.access(f, A.ALL, ROOT), { status: S.OK, access: A.READ }, 'ACCESS grants no MODIFY/EXTEND')
  t.strictSame(await nfs.access(open, A.ALL, ROOT), { status: S.OK, access: A.READ | A.LOOKUP }, 'nor DELETE on a directory')
  t.equal(fs.readFileSync(join(base, 'ro', 'f-666'), 'utf8'), 'data', 'the host file is unchanged')
  t.strictSame(fs.readdirSync(join(base, 'ro', 'open')), [], 'nothing created')
})
