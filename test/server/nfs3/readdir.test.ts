import t from 'tap'
import type { Test } from 'tap'
import { nfsstat3, READDIR3res, READDIRPLUS3res } from '../../../xdr/generated/nfs3.ts'
import type { entry3, entryplus3 } from '../../../xdr/generated/nfs3.ts'
import { entry3Size } from '../../../server/nfs3/readdir-budget.ts'
import type { Nfs3Fixture } from '../../helpers/nfs3-host.ts'
import { ALICE, b, BOB, encodedSize, nfs3Fixture, resfail, resok } from '../../helpers/nfs3-host.ts'

const N = 10_000
const ZERO = Buffer.alloc(8)

async function bigDir(fx: Nfs3Fixture): Promise<{ data: Buffer }> {
  const d = await fx.dir('big')
  for (let i = 0; i < N; i++) await fx.vfs.mknod(d, b(`entry-${i}`), 'fifo', { major: 0, minor: 0 }, {}, { uid: 0, gid: 0 })
  return fx.fh(d)
}

function checkNames(t: Test, names: string[]): void {
  const seen = new Set(names)
  t.equal(names.length, N + 2, 'every entry, with . and ..')
  t.equal(seen.size, names.length, 'each exactly once')
  for (let i = 0; i < N; i++) if (!seen.has(`entry-${i}`)) t.fail(`missing entry-${i}`)
  t.ok(seen.has('.') && seen.has('..'))
}

t.test('READDIR: 10,000 entries with small counts, each once, replies within count and stopping exactly', async (t) => {
  const fx = nfs3Fixture(t)
  const dir = await bigDir(fx)
  const count = 1024
  const names: string[] = []
  let cookie = 0n
  let calls = 0
  let lastSize = 0
  for (;;) {
    const r = await fx.call('NFSPROC3_READDIR', { dir, cookie, cookieverf: ZERO, count })
    const ok = resok(r)
    const size = encodedSize(READDIR3res, r)
    if (size > count) t.fail(`reply of ${size} bytes exceeds count ${count}`)
    const first: entry3 | undefined = ok.reply.entries[0]
    if (calls > 0 && first !== undefined && lastSize + entry3Size(first.name.length) <= count) t.fail('the previous page stopped early')
    t.same(ok.cookieverf, ZERO)
    names.push(...ok.reply.entries.map((e) => e.name.toString()))
    calls++
    lastSize = size
    if (ok.reply.eof) break
    const last = ok.reply.entries.at(-1)
    if (last === undefined) throw new Error('an empty page that is not eof')
    cookie = last.cookie
  }
  checkNames(t, names)
  t.ok(calls > 100, `paged (${calls} calls)`)
})

t.test('READDIRPLUS: 10,000 entries, maxcount and dircount honoured, attributes and handles', async (t) => {
  const fx = nfs3Fixture(t)
  const dir = await bigDir(fx)
  const maxcount = 4096
  const dircount = 512
  const names: string[] = []
  let cookie = 0n
  for (;;) {
    const r = await fx.call('NFSPROC3_READDIRPLUS', { dir, cookie, cookieverf: ZERO, dircount, maxcount })
    const ok = resok(r)
    const size = encodedSize(READDIRPLUS3res, r)
    if (size > maxcount) t.fail(`reply of ${size} bytes exceeds maxcount ${maxcount}`)
    const dirInfo = ok.reply.entries.reduce((n, e) => n + entry3Size(e.name.length), 0)
    if (dirInfo > dircount) t.fail(`directory information ${dirInfo} exceeds dircount ${dircount}`)
    for (const e of ok.reply.entries) {
      if (e.name_attributes === null || e.name_handle === null) t.fail(`${e.name.toString()} without attributes or handle`)
      else if (e.name_attributes.fileid !== e.fileid) t.fail('attributes of another object')
    }
    names.push(...ok.reply.entries.map((e) => e.name.toString()))
    if (ok.reply.eof) break
    const last: entryplus3 | undefined = ok.reply.entries.at(-1)
    if (last === undefined) throw new Error('an empty page that is not eof')
    cookie = last.cookie
  }
  checkNames(t, names)
})

t.test('READDIRPLUS handles name the entries', async (t) => {
  const fx = nfs3Fixture(t)
  const f = await fx.file('f', 'x')
  const ok = resok(await fx.call('NFSPROC3_READDIRPLUS', { dir: fx.root, cookie: 0n, cookieverf: ZERO, dircount: 0, maxcount: 8192 }))
  t.same(ok.reply.entries.map((e) => e.name.toString()), ['.', '..', 'f'])
  t.equal(ok.reply.eof, true)
  const fe = ok.reply.entries[2]
  t.same(fe?.name_handle?.data, fx.fh(f).data)
  t.same(ok.reply.entries[1]?.name_handle?.data, fx.root.data, '.. of the export root is the root')
})

t.test('TOOSMALL when not even one entry fits; an empty tail is eof', async (t) => {
  const fx = nfs3Fixture(t)
  await fx.file('a-rather-long-file-name-that-takes-room')
  const small = await fx.call('NFSPROC3_READDIR', { dir: fx.root, cookie: 2n, cookieverf: ZERO, count: 120 })
  t.equal(small.status, nfsstat3.NFS3ERR_TOOSMALL)
  t.match(resfail(small).dir_attributes, { fileid: fx.rootRef.id })
  t.equal((await fx.call('NFSPROC3_READDIR', { dir: fx.root, cookie: 0n, cookieverf: ZERO, count: 50 })).status, nfsstat3.NFS3ERR_TOOSMALL, 'below the fixed overhead')
  const plus = await fx.call('NFSPROC3_READDIRPLUS', { dir: fx.root, cookie: 0n, cookieverf: ZERO, dircount: 100, maxcount: 150 })
  t.equal(plus.status, nfsstat3.NFS3ERR_TOOSMALL)
  t.equal((await fx.call('NFSPROC3_READDIRPLUS', { dir: fx.root, cookie: 0n, cookieverf: ZERO, dircount: 0, maxcount: 10 })).status, nfsstat3.NFS3ERR_TOOSMALL)
  const all = resok(await fx.call('NFSPROC3_READDIR', { dir: fx.root, cookie: 0n, cookieverf: ZERO, count: 4096 }))
  const last = all.reply.entries.at(-1)
  const tail = resok(await fx.call('NFSPROC3_READDIR', { dir: fx.root, cookie: last?.cookie ?? 0n, cookieverf: ZERO, count: 120 }))
  t.same(tail.reply, { entries: [], eof: true }, 'nothing after the last cookie')
})

t.test('a stale cookie verifier is never checked (ANCHORS row 4)', async (t) => {
  const fx = nfs3Fixture(t)
  await fx.file('f')
  const r = await fx.call('NFSPROC3_READDIR', { dir: fx.root, cookie: 1n, cookieverf: Buffer.from('garbage!'), count: 4096 })
  t.same(resok(r).reply.entries.map((e) => e.name.toString()), ['..', 'f'])
})

t.test('READDIR failures: NOTDIR, ACCES, BADHANDLE; UDP caps the count', async (t) => {
  const fx = nfs3Fixture(t)
  const f = await fx.file('f')
  const d = await fx.dir('d', { mode: 0o311, owner: { uid: 1000, gid: 1000 } })
  t.equal((await fx.call('NFSPROC3_READDIR', { dir: fx.fh(f), cookie: 0n, cookieverf: ZERO, count: 4096 })).status, nfsstat3.NFS3ERR_NOTDIR)
  fx.host.user = BOB
  const denied = await fx.call('NFSPROC3_READDIRPLUS', { dir: fx.fh(d), cookie: 0n, cookieverf: ZERO, dircount: 0, maxcount: 4096 })
  t.equal(denied.status, nfsstat3.NFS3ERR_ACCES)
  t.match(resfail(denied).dir_attributes, { fileid: d.id })
  fx.host.user = ALICE
  t.equal((await fx.call('NFSPROC3_READDIR', { dir: fx.fh(d), cookie: 0n, cookieverf: ZERO, count: 4096 })).status, nfsstat3.NFS3ERR_ACCES, 'no owner override on directories')
  t.equal(resfail(await fx.call('NFSPROC3_READDIR', { dir: { data: Buffer.alloc(3) }, cookie: 0n, cookieverf: ZERO, count: 4096 })).dir_attributes, null)
  fx.host.user = { uid: 0, gid: 0, gids: [] }
  const big = await bigDir(fx)
  fx.transport = 'udp'
  const udp = await fx.call('NFSPROC3_READDIRPLUS', { dir: big, cookie: 0n, cookieverf: ZERO, dircount: 1 << 20, maxcount: 1 << 20 })
  t.ok(encodedSize(READDIRPLUS3res, udp) <= 32 * 1024, 'at most 32 KiB on UDP')
  t.equal(resok(udp).reply.eof, false)
})
