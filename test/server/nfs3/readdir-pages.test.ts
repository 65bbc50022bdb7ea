/*
 * READDIR and READDIRPLUS pages of the direct path (entries written straight
 * into bytes) against the object path it replaced (test/helpers/readdir-reference.ts):
 * for a directory of random names (1–255 bytes) and objects of every kind,
 * each page at each count is the same reply byte for byte, so the same
 * entries, cookies, TOOSMALLs and eofs — at small counts, and with maxcount
 * and dircount exactly at, one word under and one word over what k entries
 * need (RFC 1813 §3.3.17 P3: the first entry bound only by maxcount).
 * TSNFS_SEED repeats a run.
 */
import t from 'tap'
import type { Test } from 'tap'
import { READDIR3res, READDIRPLUS3res } from '../../../xdr/generated/nfs3.ts'
import type { nfs_fh3 } from '../../../xdr/generated/nfs3.ts'
import { encodeToBuffer } from '../../../xdr/runtime/codec.ts'
import { silentLogger } from '../../../server/logger.ts'
import type { Nfs3Context } from '../../../server/nfs3/context.ts'
import { createNfs3Context } from '../../../server/nfs3/context.ts'
import { entry3Size, postOpAttrSize, postOpFhSize, replyOverhead } from '../../../server/nfs3/readdir-budget.ts'
import type { Nfs3Fixture } from '../../helpers/nfs3-host.ts'
import { nfs3Fixture } from '../../helpers/nfs3-host.ts'
import { prng } from '../../helpers/prng.ts'
import { referenceReaddir, referenceReaddirplus } from '../../helpers/readdir-reference.ts'

const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 100000)
t.comment(`seed ${seed}`)
const rand = prng(seed)
const int = (n: number): number => Math.floor(rand() * n)
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789._-'
const ZERO = Buffer.alloc(8)
const owner = { uid: 0, gid: 0 }

/** A directory of `n` objects of every kind, names of 1 to 255 bytes, some with times past nfstime3's range. */
async function randomDir(fx: Nfs3Fixture, n: number): Promise<nfs_fh3> {
  const d = await fx.dir('d')
  const used = new Set<string>()
  for (let i = 0; i < n; i++) {
    let name: string
    do name = Array.from({ length: 1 + int(255) }, () => ALPHABET[int(ALPHABET.length)]).join('')
    while (used.has(name) || name === '.' || name === '..')
    used.add(name)
    const b = Buffer.from(name)
    const kind = int(5)
    if (kind === 0) await fx.vfs.mkdir(d, b, { mode: 0o755 }, owner)
    else if (kind === 1) await fx.vfs.symlink(d, b, Buffer.from('target'), {}, owner)
    else if (kind === 2) await fx.vfs.mknod(d, b, 'char', { major: int(256), minor: int(2 ** 20) }, {}, owner)
    else {
      const { ref } = await fx.vfs.create(d, b, { how: 'guarded', attr: { mode: 0o644 } }, owner)
      // After 2106: nfstime clamps it (times before 1970 the vfs refuses; entry-writer.test.ts has them).
      if (kind === 4) await fx.vfs.setattr(ref, { size: BigInt(int(2 ** 30)), mtime: { sec: 2 ** 32 + int(2 ** 30), nsec: int(1e9) }, atime: { sec: 2 ** 40, nsec: 0 } })
    }
  }
  return fx.fh(d)
}

function contextOf(fx: Nfs3Fixture): Nfs3Context {
  return createNfs3Context(fx.host, {
    xid: 1,
    prog: 100003,
    vers: 3,
    proc: 17,
    cred: { flavor: 'sys', uid: 0, gid: 0, gids: [], machinename: 'test' },
    peer: { address: '127.0.0.1', port: 700, family: 'IPv4' },
    transport: 'tcp',
    log: silentLogger,
    signal: new AbortController().signal,
  })
}

/** The last entry's cookie of an OK reply, or null (a failure, or eof). */
function resume(r: READDIRPLUS3res | READDIR3res): bigint | null {
  if (r.status !== 0 || r.resok.reply.eof) return null
  const last = r.resok.reply.entries.at(-1)
  if (last === undefined) throw new Error('an empty page that is not eof')
  return last.cookie
}

/** Walk the whole listing both ways at these counts; every page the same bytes. Returns the pages. */
async function comparePlus(t: Test, fx: Nfs3Fixture, dir: nfs_fh3, maxcount: number, dircount: number): Promise<number> {
  const ctx = contextOf(fx)
  let cookie = 0n
  for (let pages = 1; ; pages++) {
    const args = { dir, cookie, cookieverf: ZERO, dircount, maxcount }
    const got = encodeToBuffer(READDIRPLUS3res, await fx.call('NFSPROC3_READDIRPLUS', args))
    const wantRes = await referenceReaddirplus(args, ctx)
    const want = encodeToBuffer(READDIRPLUS3res, wantRes)
    if (!got.equals(want)) {
      t.fail(`READDIRPLUS maxcount ${maxcount} dircount ${dircount} page ${pages} at cookie ${cookie}: ${got.length} bytes vs ${want.length} (seed ${seed})`)
      return pages
    }
    const next = resume(wantRes)
    if (next === null) return pages
    cookie = next
  }
}

async function compareReaddir(t: Test, fx: Nfs3Fixture, dir: nfs_fh3, count: number): Promise<number> {
  const ctx = contextOf(fx)
  let cookie = 0n
  for (let pages = 1; ; pages++) {
    const args = { dir, cookie, cookieverf: ZERO, count }
    const got = encodeToBuffer(READDIR3res, await fx.call('NFSPROC3_READDIR', args))
    const wantRes = await referenceReaddir(args, ctx)
    const want = encodeToBuffer(READDIR3res, wantRes)
    if (!got.equals(want)) {
      t.fail(`READDIR count ${count} page ${pages} at cookie ${cookie}: ${got.length} bytes vs ${want.length} (seed ${seed})`)
      return pages
    }
    const next = resume(wantRes)
    if (next === null) return pages
    cookie = next
  }
}

t.test('READDIRPLUS: every page the same bytes as the object path, small counts and boundaries', async (t) => {
  const fx = nfs3Fixture(t)
  const dir = await randomDir(fx, 300)
  for (const [maxcount, dircount] of [
    [1024, 512],
    [1024, 0],
    [4096, 512],
    [32768, 8192],
    [65536, 0],
  ] as const) {
    const pages = await comparePlus(t, fx, dir, maxcount, dircount)
    t.ok(pages >= 1, `maxcount ${maxcount} dircount ${dircount}: ${pages} pages`)
  }

  // The first page at 4096 says what k entries cost; then maxcount and dircount at, under and over it.
  const first = await referenceReaddirplus({ dir, cookie: 0n, cookieverf: ZERO, dircount: 0, maxcount: 4096 }, contextOf(fx))
  if (first.status !== 0) throw new Error(`status ${first.status}`)
  const entries = first.resok.reply.entries
  const k = entries.length
  t.ok(k >= 3, `${k} entries in the first 4096-byte page`)
  const size = encodeToBuffer(READDIRPLUS3res, first).length
  const dirInfo = entries.reduce((n, e) => n + entry3Size(e.name.length), 0)
  const e0 = entries[0]
  if (e0 === undefined) throw new Error('no first entry')
  const firstEntry = replyOverhead(true) + entry3Size(e0.name.length) + postOpAttrSize(true) + postOpFhSize(e0.name_handle?.data.length ?? -1)
  // [maxcount, dircount, what, entries the page must hold (-1: TOOSMALL)]
  for (const [maxcount, dircount, what, n] of [
    [size, 0, 'maxcount exactly k entries', k],
    [size - 1, 0, 'maxcount a byte short of k', k - 1],
    [size - 4, 0, 'maxcount a word short of k', k - 1],
    [size + 4, 0, 'maxcount a word over k', k],
    [firstEntry, 0, 'maxcount exactly the first entry', 1],
    [firstEntry - 4, 0, 'maxcount a word short of the first entry (TOOSMALL)', -1],
    [65536, dirInfo, 'dircount exactly k entries', k],
    [65536, dirInfo - 4, 'dircount a word short of k', k - 1],
    [65536, dirInfo + 4, 'dircount a word over k', k],
    [65536, 1, 'dircount 1: the first entry still goes (P3)', 1],
    [firstEntry, 1, 'both at their least', 1],
  ] as const) {
    const before = t.counts.fail
    const args = { dir, cookie: 0n, cookieverf: ZERO, dircount, maxcount }
    const want = await referenceReaddirplus(args, contextOf(fx))
    const got = await fx.call('NFSPROC3_READDIRPLUS', args)
    t.ok(encodeToBuffer(READDIRPLUS3res, got).equals(encodeToBuffer(READDIRPLUS3res, want)), `${what}: the same reply`)
    t.same(
      got.status === 0 ? got.resok.reply.entries.map((e) => e.cookie) : got.status,
      want.status === 0 ? want.resok.reply.entries.map((e) => e.cookie) : want.status,
      `${what}: the same cookies`,
    )
    t.equal(got.status === 0 ? got.resok.reply.entries.length : -1, n, `${what}: ${n === -1 ? 'TOOSMALL' : `${n} entries`}`)
    if (t.counts.fail === before) await comparePlus(t, fx, dir, maxcount, dircount)
  }
})

t.test('READDIR: every page the same bytes as the object path', async (t) => {
  const fx = nfs3Fixture(t)
  const dir = await randomDir(fx, 300)
  for (const count of [1024, 700, 4096, 32768]) {
    const pages = await compareReaddir(t, fx, dir, count)
    t.ok(pages >= 1, `count ${count}: ${pages} pages`)
  }
  const overhead = replyOverhead(true)
  for (const count of [overhead, overhead + entry3Size(1) - 4, overhead + entry3Size(255)]) await compareReaddir(t, fx, dir, count)
})
