/*
 * Root's reserved blocks (s_r_blocks_count) on an engine export, through a
 * real server: a non-root caller fills the file system until WRITE answers
 * NFS3ERR_NOSPC with exactly the reserve left; FSSTAT then says fbytes is the
 * reserve and abytes 0 (ext4's statfs: f_bavail excludes the reserve for
 * everybody); root (no_root_squash) still writes, a non-root caller still
 * cannot; on a root_squash export root is squashed and gets NOSPC too. The
 * image is e2fsck -fn clean at the end.
 */
import t from 'tap'
import type { Test } from 'tap'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { FILE_SYNC, Nfs3, cred } from '../helpers/local.ts'
import { NFS3, ROOT_CRED, startServer } from '../helpers/server.ts'
import { fh } from '../helpers/e2e.ts'
import { mkfs, scratch } from '../vfs/engine/format-helpers.ts'

t.setTimeout(120_000)
const NOSPC = 28
const ALICE = cred(1000, 1000)
const dir = scratch(t, 'engine-reserved')
const image = path.join(dir, 'r.img')
// 8 MiB of 1 KiB blocks (a 1 MiB journal), 10 % reserved for root.
mkfs(image, 8 << 20, ['-b', '1024', '-m', '10', '-J', 'size=1'])
const reserved = Number(/Reserved block count:\s+(\d+)/.exec(spawnSync('dumpe2fs', ['-h', image], { encoding: 'utf8' }).stdout)?.[1])
t.ok(reserved > 0, `the image reserves ${reserved} blocks`)

async function serve(t: Test, squash: 'root_squash' | 'no_root_squash'): Promise<{ nfs: Nfs3; root: Buffer }> {
  const s = await startServer(t, `/e *(rw,insecure,${squash},backend=engine,image=${image})\n`)
  const nfs = await Nfs3.connect(t, s.port)
  t.teardown(() => s.server.close())
  return { nfs, root: await nfs.mount('/e') }
}

async function fsstat(nfs: Nfs3, root: Buffer): Promise<{ fbytes: bigint; abytes: bigint }> {
  const r = await nfs.call(NFS3.NFSPROC3_FSSTAT, { fsroot: fh(root) })
  if (r.status !== 0) throw new Error(`FSSTAT: status ${r.status}`)
  return { fbytes: r.resok.fbytes, abytes: r.resok.abytes }
}

await t.test('no_root_squash: a user fills up to the reserve, root writes into it', async (t) => {
  const { nfs, root } = await serve(t, 'no_root_squash')
  t.equal(await nfs.setattr(root, { mode: 0o777 }), 0, 'the root directory open to everybody')
  const before = await fsstat(nfs, root)
  t.equal(before.fbytes - before.abytes, BigInt(reserved * 1024), 'FSSTAT: fbytes - abytes is the reserve')
  const fill = await nfs.create(root, 'fill', ALICE)
  t.equal(fill.status, 0, 'the user creates a file')
  const chunk = Buffer.alloc(32 * 1024, 0x61)
  let offset = 0n
  let status = 0
  // The file system is 8 MiB: at most 256 full chunks before the reserve.
  for (let i = 0; i < 400 && status === 0; i++) {
    const w = await nfs.write(fill.fh ?? Buffer.alloc(0), offset, chunk, FILE_SYNC, ALICE)
    status = w.status
    if (w.status === 0) offset += BigInt(w.count ?? 0)
  }
  t.equal(status, NOSPC, `the user's WRITE ends in NFS3ERR_NOSPC after ${offset} bytes`)
  const full = await fsstat(nfs, root)
  t.equal(full.fbytes, BigInt(reserved * 1024), 'FSSTAT: fbytes is exactly the reserve')
  t.equal(full.abytes, 0n, 'FSSTAT: abytes is 0')
  t.equal((await nfs.write(fill.fh ?? Buffer.alloc(0), offset, Buffer.alloc(1024, 1), FILE_SYNC, ALICE)).status, NOSPC, 'one more block: NOSPC for the user')
  const mine = await nfs.create(root, 'root-file', ROOT_CRED)
  t.equal(mine.status, 0, 'root creates a file')
  const w = await nfs.write(mine.fh ?? Buffer.alloc(0), 0n, Buffer.alloc(64 * 1024, 0x72), FILE_SYNC, ROOT_CRED)
  t.equal(w.status, 0, 'root writes 64 KiB into the reserve')
  const after = await fsstat(nfs, root)
  t.ok(after.fbytes < full.fbytes, `FSSTAT: fbytes fell to ${after.fbytes}`)
  t.equal(after.abytes, 0n, 'FSSTAT: abytes still 0')
  const back = await nfs.read(mine.fh ?? Buffer.alloc(0), 0n, 64 * 1024, ROOT_CRED)
  t.ok(back.data?.equals(Buffer.alloc(64 * 1024, 0x72)), "root's data reads back")
})

await t.test('root_squash: root is squashed, and gets NOSPC like anybody', async (t) => {
  const { nfs, root } = await serve(t, 'root_squash')
  const f = await nfs.create(root, 'squashed', ROOT_CRED)
  t.equal(f.status, 0, 'create (an inode, no block) works')
  t.equal((await nfs.write(f.fh ?? Buffer.alloc(0), 0n, Buffer.alloc(1024, 2), FILE_SYNC, ROOT_CRED)).status, NOSPC, "a squashed root's WRITE: NOSPC")
})

await t.test('the image is e2fsck -fn clean', (t) => {
  const r = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' })
  t.equal(r.status, 0, `e2fsck -fn clean${r.status === 0 ? '' : `\n${r.stdout}${r.stderr}`}`)
  t.end()
})
