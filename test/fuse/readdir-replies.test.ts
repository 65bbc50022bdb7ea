/*
 * READDIR and READDIRPLUS replies of the mount (issue 11 point 3, listings):
 * the kernel asks for as many bytes as its caller's getdents buffer, 1 MiB
 * on our mounts (glibc sizes it by the directory's st_blksize), so a reply
 * must be a buffer of the entries that fit, not of the size asked: one
 * zeroed MiB per request made rm -rf and find of a tree spend most of the
 * daemon's CPU zeroing and collecting memory (bench/README.md, session 33).
 * The daemon's own classes against a real server in this process; the
 * kernel's side is covered by the mount tests (operate, lifecycle).
 */
import t from 'tap'
import type { Test } from 'tap'
import { NfsClient } from '../../client/nfs-client.ts'
import { ENTRY_OUT_SIZE } from '../../client/fuse/abi.ts'
import { NfsFiles } from '../../client/fuse/nfs-files.ts'
import { NfsFs } from '../../client/fuse/nfs-fs.ts'
import type { Reply } from '../../client/fuse/session.ts'
import { startServer } from '../helpers/server.ts'

const MiB = 1024 * 1024
const NAMES = ['a', 'bb', 'a-longer-name-of-24-char', 'd']

interface Dirent {
  ino: bigint
  off: bigint
  type: number
  name: string
  /** READDIRPLUS: the entry's node id (0: no entry). */
  nodeid: bigint | null
}

/** Parse a reply's fuse_dirent or fuse_direntplus records (fuse.h). */
function parse(t: Test, b: Buffer, plus: boolean): Dirent[] {
  const out: Dirent[] = []
  let o = 0
  while (o < b.length) {
    const nodeid = plus ? b.readBigUInt64LE(o) : null
    const d = plus ? o + ENTRY_OUT_SIZE : o
    const len = b.readUInt32LE(d + 16)
    out.push({ ino: b.readBigUInt64LE(d), off: b.readBigUInt64LE(d + 8), type: b.readUInt32LE(d + 20), nodeid, name: b.subarray(d + 24, d + 24 + len).toString() })
    o = d + Math.ceil((24 + len) / 8) * 8
  }
  t.equal(o, b.length, 'records end where the reply ends')
  return out
}

function only(t: Test, r: Reply): Buffer {
  t.equal(r.data?.length, 1, 'one buffer')
  const b = r.data?.[0]
  if (b === undefined) throw new Error('no data')
  return b
}

t.test('a listing asked with 1 MiB: replies hold the entries that fit, in buffers of their own size', async t => {
  const fx = await startServer(t, '/export *(rw,insecure,no_root_squash,backend=memory)\n')
  const c = await NfsClient.mount(fx.url('/export'))
  t.teardown(() => c.umount())
  await c.mkdir('dir')
  for (const n of NAMES) await c.writeFile(`dir/${n}`, Buffer.from(n))
  const fs = new NfsFs(c, (await c.resolve('')).fh)
  const files = new NfsFiles(fs, { notify: () => true, notifyAsync: () => Promise.resolve(true) })
  const who = { cred: c.cred, client: c }
  const dir = fs.inodes.hold((await c.resolve('dir')).fh, 0n)

  for (const plus of [false, true]) {
    const open = await files.opendir(who, dir)
    const dh = only(t, open).readBigUInt64LE(0)
    const first = only(t, await files.readdir(dh, 0n, MiB, plus))
    const got = parse(t, first, plus)
    t.strictSame(got.map(e => e.name).sort(), ['.', '..', ...NAMES].sort(), `${plus ? 'READDIRPLUS' : 'READDIR'}: every name`)
    t.strictSame(got.map(e => e.off), got.map((_, i) => BigInt(i + 1)), 'offsets: index + 1')
    const size = got.reduce((s, e) => s + (plus ? ENTRY_OUT_SIZE : 0) + Math.ceil((24 + Buffer.byteLength(e.name)) / 8) * 8, 0)
    t.equal(first.length, size, 'as long as its records')
    t.equal(first.buffer.byteLength, size, 'in a buffer of that size, not of the 1 MiB asked')
    if (plus) t.ok(got.filter(e => e.name !== '.' && e.name !== '..').every(e => e.nodeid !== 0n), 'READDIRPLUS: each name with its entry')

    // A size that holds the first two records only, then the rest from the offset the kernel passes back.
    const two = got.slice(0, 2).reduce((s, e) => s + (plus ? ENTRY_OUT_SIZE : 0) + Math.ceil((24 + Buffer.byteLength(e.name)) / 8) * 8, 0)
    const part = only(t, await files.readdir(dh, 0n, two + 7, plus))
    t.strictSame(parse(t, part, plus).map(e => e.name), got.slice(0, 2).map(e => e.name), 'two records fit')
    t.equal(part.buffer.byteLength, two, 'and the buffer holds just them')
    const rest = only(t, await files.readdir(dh, 2n, MiB, plus))
    t.strictSame(parse(t, rest, plus).map(e => e.name), got.slice(2).map(e => e.name), 'the rest from offset 2')
    const end = only(t, await files.readdir(dh, BigInt(got.length), MiB, plus))
    t.equal(end.length, 0, 'past the last entry: an empty reply (end of the directory)')
    t.equal(end.buffer.byteLength, 0, 'that allocates nothing')
    files.releasedir(dh)
  }
})
