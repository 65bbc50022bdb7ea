/*
 * The parts without a kernel: node table bookkeeping (lookup counts,
 * FORGET, pending replies, fileid collisions), mount option parsing, and
 * the struct layouts against fuse.h sizes.
 */
import t from 'tap'
import { ATTR_OUT_SIZE, ENTRY_OUT_SIZE, FUSE_ROOT_ID, direntSize, direntplusSize, initOut, openOut, putDirent, statfsOut } from '../../client/fuse/abi.ts'
import { errnoFor, makedev, splitdev } from '../../client/fuse/convert.ts'
import { InodeTable } from '../../client/fuse/inodes.ts'
import { fuseMountOptions } from '../../client/fuse/mount.ts'
import { parseMountOptions, sourceUrl } from '../../client/fuse/options.ts'
import { NfsError } from '../../client/errors.ts'
import { RpcError } from '../../client/rpc/errors.ts'

const fh = (n: number): Buffer => Buffer.from(`handle-${String(n)}`)

t.test('node table: lookups, forgets, and memory that follows the kernel', async t => {
  const tab = new InodeTable(fh(0))
  t.equal(tab.root.nodeid, FUSE_ROOT_ID, 'root is node 1')
  const a = tab.hold(fh(1), 1000n)
  t.equal(a.nodeid, 1000n, 'node id = fileid when free')
  tab.sent(a)
  t.equal(tab.hold(fh(1), 1000n), a, 'the same handle is the same node')
  tab.sent(a)
  t.equal(a.nlookup, 2n, 'two lookups')
  tab.forget(a.nodeid, 1n)
  t.equal(tab.get(1000n), a, 'kept while references remain')
  tab.forget(a.nodeid, 1n)
  t.equal(tab.get(1000n), undefined, 'gone at zero')
  t.equal(tab.byHandle(fh(1)), undefined, 'from both indexes')
  const one = tab.hold(fh(2), 1n)
  t.not(one.nodeid, FUSE_ROOT_ID, 'fileid 1 does not take the root id')
  const b = tab.hold(fh(3), 2000n)
  const other = tab.hold(fh(4), 2000n)
  t.not(other.nodeid, b.nodeid, 'a fileid reused by another handle gets another node id')
  t.not(other.generation, b.generation, 'and another generation')
  tab.dropped(b)
  t.equal(tab.get(b.nodeid), undefined, 'an entry whose reply was dropped is forgotten')
  const c = tab.hold(fh(5), 3000n)
  tab.hold(fh(5), 3000n)
  tab.dropped(c)
  t.equal(tab.get(3000n), c, 'kept while another reply carrying it is out')
  tab.sent(c)
  c.opens = 1
  tab.forget(c.nodeid, 1n)
  t.equal(tab.get(3000n), c, 'kept while open')
  c.opens = 0
  tab.collect(c)
  t.equal(tab.get(3000n), undefined, 'collected after the last close')
  tab.forget(FUSE_ROOT_ID, 5n)
  t.equal(tab.get(FUSE_ROOT_ID), tab.root, 'the root is never forgotten')
  for (let i = 0; i < 10_000; i++) {
    const n = tab.hold(fh(100 + i), BigInt(100 + i))
    tab.sent(n)
    tab.forget(n.nodeid, 1n)
  }
  t.ok(tab.size <= 4, `bounded after 10,000 lookups and forgets (size ${String(tab.size)})`)
})

t.test('mount options', async t => {
  const o = parseMountOptions(['ro,rsize=65536,wsize=32768,actimeo=5,acregmin=1,noac', 'port=2049,mountport=20048,proto=udp,uid=1000,gid=100,allow_other,soft,timeo=7,retrans=4,nosuid,vers=3'])
  t.strictSame(o, {
    readOnly: true,
    allowOther: true,
    suid: false,
    dev: false,
    exec: true,
    fixedIdentity: true,
    localLock: 'none',
    client: { hard: false, blockCacheBytes: 32 * 1024 * 1024, idleGc: true, rsize: 65536, wsize: 32768, actimeo: 5, acregmin: 1, noac: true, nfsport: 2049, mountport: 20048, proto: 'udp', uid: 1000, gid: 100, timeoutMs: 700, retrans: 4 },
  })
  t.equal(parseMountOptions([]).client.hard, true, 'hard by default, as Linux')
  t.throws(() => parseMountOptions(['bogus']), { code: 'FUSE_BAD_OPTION' })
  t.throws(() => parseMountOptions(['rsize=big']), { code: 'FUSE_BAD_OPTION' })
  t.throws(() => parseMountOptions(['vers=4']), { code: 'FUSE_BAD_OPTION' })
  t.equal(sourceUrl('server:/export/sub dir'), 'nfs://server/export/sub%20dir')
  t.equal(sourceUrl('[::1]:/e'), 'nfs://[::1]/e')
  t.equal(sourceUrl('nfs://h/e?nfsport=1'), 'nfs://h/e?nfsport=1')
  t.throws(() => sourceUrl('no-colon'), { code: 'FUSE_BAD_OPTION' })
})

t.test('mount options for locks', async t => {
  const o = parseMountOptions(['clientaddr=127.0.0.2,callername=h1,lockport=4001,lockportmapport=4002,lockaddr=127.0.0.9,nlmport=4003,lockstatedir=/tmp/s,local_lock=flock'])
  t.strictSame(o.client, { hard: true, blockCacheBytes: 32 * 1024 * 1024, idleGc: true, clientAddress: '127.0.0.2', callerName: 'h1', lockPort: 4001, lockPortmapPort: 4002, lockAddress: '127.0.0.9', nlmport: 4003, lockStateDir: '/tmp/s' })
  t.equal(o.localLock, 'flock')
  t.equal(parseMountOptions(['nolock']).client.lock, false)
  t.equal(parseMountOptions(['nolock,lock']).client.lock, true, 'the last one wins')
  for (const bad of ['local_lock=some', 'clientaddr', 'clientaddr=', 'nlmport=x', 'lockport']) t.throws(() => parseMountOptions([bad]), { code: 'FUSE_BAD_OPTION' }, bad)
})

t.test('mount options for memory: sizes with suffixes, the idle trim in seconds, bad values refused', async t => {
  const o = parseMountOptions(['blockcache=8M,dirtylimit=65536,idletrim=2.5'])
  t.equal(o.client.blockCacheBytes, 8 * 1024 * 1024)
  t.equal(o.client.dirtyLimitBytes, 65536)
  t.equal(o.client.idleTrimMs, 2500)
  t.equal(parseMountOptions(['blockcache=1g']).client.blockCacheBytes, 1024 ** 3)
  t.equal(parseMountOptions(['idletrim=0']).client.idleTrimMs, 0, 'idletrim=0: never')
  for (const bad of ['blockcache', 'blockcache=', 'blockcache=-1', 'blockcache=8T', 'blockcache=1.5M', 'dirtylimit=lots', 'idletrim=-3', 'idletrim=soon']) {
    t.throws(() => parseMountOptions([bad]), { code: 'FUSE_BAD_OPTION' }, bad)
  }
})

t.test('struct layouts and conversions', async t => {
  t.equal(ENTRY_OUT_SIZE, 128, 'fuse_entry_out')
  t.equal(ATTR_OUT_SIZE, 104, 'fuse_attr_out')
  t.equal(openOut(7n, 2).length, 16, 'fuse_open_out')
  t.equal(initOut({ maxReadahead: 1, flags: 1, maxBackground: 1, congestionThreshold: 1, maxWrite: 1, maxPages: 1 }).length, 64, 'fuse_init_out')
  t.equal(statfsOut({ blocks: 1n, bfree: 1n, bavail: 1n, files: 1n, ffree: 1n, bsize: 1, namelen: 1, frsize: 1 }).length, 80, 'fuse_statfs_out')
  t.equal(direntSize(Buffer.from('a')), 32, 'dirent padded to 8')
  t.equal(direntSize(Buffer.from('12345678')), 32)
  t.equal(direntSize(Buffer.from('123456789')), 40)
  t.equal(direntplusSize(Buffer.from('a')), 160)
  const b = Buffer.alloc(64, 0xff)
  t.equal(putDirent(b, 0, 5n, 1n, 4, Buffer.from('abc')), 32)
  t.strictSame([b.readBigUInt64LE(0), b.readBigUInt64LE(8), b.readUInt32LE(16), b.readUInt32LE(20), b.subarray(24, 32).toString('latin1')], [5n, 1n, 3, 4, 'abc\0\0\0\0\0'])
  t.strictSame(splitdev(makedev(259, 70000)), { major: 259, minor: 70000 }, 'dev_t round trip')
  t.equal(errnoFor(NfsError.fromStatus(2, 'LOOKUP')), 2, 'NFS3ERR_NOENT → ENOENT')
  t.equal(errnoFor(NfsError.fromStatus(66, 'RMDIR')), 39, 'NFS3ERR_NOTEMPTY → ENOTEMPTY (Linux 39)')
  t.equal(errnoFor(new RpcError('RPC_TIMEOUT', 'x')), 5, 'a soft timeout → EIO')
})

t.test('mount(8) options: default_permissions wherever a caller other than root may enter', async t => {
  const opts = (o: Parameters<typeof fuseMountOptions>[0], uid: number): string[] => fuseMountOptions(o, uid, uid).split(',')
  t.notOk(opts({}, 0).includes('default_permissions'), "root's own mount: the server judges root's calls")
  t.ok(opts({ allowOther: true }, 0).includes('default_permissions'), 'allow_other: the kernel checks each caller first')
  t.ok(opts({}, 1000).includes('default_permissions'), 'a mount another user made')
  t.ok(opts({ allowOther: true, fixedIdentity: true }, 0).includes('default_permissions'), 'a single-identity mount others may enter')
  t.strictSame(opts({ readOnly: true, exec: false }, 0), ['fd=3', 'rootmode=40000', 'user_id=0', 'group_id=0', 'ro', 'nosuid', 'nodev', 'noexec'])
})
