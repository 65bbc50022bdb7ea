import t from 'tap'
import { MOUNT_PROGRAM } from '../../xdr/generated/mount.ts'
import { FH32 } from '../fixtures/wire/data.ts'
import { type Case, checkVectors, vec } from '../fixtures/wire/check.ts'
import { MOUNT_VECTORS, V1_HANDLE } from '../fixtures/wire/vectors-mount.ts'
import { XdrReader } from '../../xdr/runtime/reader.ts'
import { bytesOf, u32 } from '../fixtures/wire/layout.ts'

/* A call and a reply of every MOUNT v3 and v1 procedure against hand-built fixtures (RFC 1813 §5.2, P16, P17). */

const V3 = MOUNT_PROGRAM.versions.MOUNT_V3.procs
const V1 = MOUNT_PROGRAM.versions.MOUNT_V1.procs
const b = (s: string): Buffer => Buffer.from(s)
const words = (...ws: number[]): Buffer => bytesOf(ws.map((w) => u32(w, '')))

const cases: Case[] = [
  vec('mount3-null-call', V3.MOUNTPROC3_NULL.args, undefined),
  vec('mount3-null-reply', V3.MOUNTPROC3_NULL.res, undefined),
  vec('mount3-mnt-call', V3.MOUNTPROC3_MNT.args, b('/export/data')),
  vec('mount3-mnt-reply', V3.MOUNTPROC3_MNT.res, { fhs_status: 0, mountinfo: { fhandle: FH32, auth_flavors: [1, 0] } }),
  vec('mount3-mnt-reply-fail', V3.MOUNTPROC3_MNT.res, { fhs_status: 13 }),
  vec('mount3-dump-call', V3.MOUNTPROC3_DUMP.args, undefined),
  vec('mount3-dump-reply', V3.MOUNTPROC3_DUMP.res, [
    { ml_hostname: b('client1'), ml_directory: b('/export/data') },
    { ml_hostname: b('10.0.0.7'), ml_directory: b('/srv') },
  ]),
  vec('mount3-umnt-call', V3.MOUNTPROC3_UMNT.args, b('/srv')),
  vec('mount3-umnt-reply', V3.MOUNTPROC3_UMNT.res, undefined),
  vec('mount3-umntall-call', V3.MOUNTPROC3_UMNTALL.args, undefined),
  vec('mount3-umntall-reply', V3.MOUNTPROC3_UMNTALL.res, undefined),
  vec('mount3-export-call', V3.MOUNTPROC3_EXPORT.args, undefined),
  vec('mount3-export-reply', V3.MOUNTPROC3_EXPORT.res, [
    { ex_dir: b('/data'), ex_groups: [{ gr_name: b('10.0.0.0/8') }, { gr_name: b('host1') }] },
    { ex_dir: b('/pub'), ex_groups: [] },
  ]),

  vec('mount1-null-call', V1.MOUNTPROC_NULL.args, undefined),
  vec('mount1-null-reply', V1.MOUNTPROC_NULL.res, undefined),
  vec('mount1-mnt-call', V1.MOUNTPROC_MNT.args, b('/pub')),
  vec('mount1-mnt-reply', V1.MOUNTPROC_MNT.res, { fhs_status: 0, fhs_fhandle: V1_HANDLE }),
  vec('mount1-mnt-reply-fail', V1.MOUNTPROC_MNT.res, { fhs_status: 13 }),
  vec('mount1-dump-call', V1.MOUNTPROC_DUMP.args, undefined),
  vec('mount1-dump-reply', V1.MOUNTPROC_DUMP.res, []),
  vec('mount1-umnt-call', V1.MOUNTPROC_UMNT.args, b('/')),
  vec('mount1-umnt-reply', V1.MOUNTPROC_UMNT.res, undefined),
  vec('mount1-umntall-call', V1.MOUNTPROC_UMNTALL.args, undefined),
  vec('mount1-umntall-reply', V1.MOUNTPROC_UMNTALL.res, undefined),
  vec('mount1-export-call', V1.MOUNTPROC_EXPORT.args, undefined),
  vec('mount1-export-reply', V1.MOUNTPROC_EXPORT.res, [{ ex_dir: b('/data'), ex_groups: [] }]),
]

t.test('every procedure of both versions has a call and a reply vector', async (t) => {
  const versions: [string, readonly string[]][] = [['mount3', Object.keys(V3)], ['mount1', Object.keys(V1)]]
  for (const [v, procs] of versions) {
    t.equal(procs.length, 6)
    for (const name of procs) {
      const stem = `${v}-${name.replace(/^MOUNTPROC3?_/, '').toLowerCase()}`
      t.ok(cases.some((c) => c.name === `${stem}-call`), `${name} call`)
      t.ok(cases.some((c) => c.name === `${stem}-reply`), `${name} reply`)
    }
  }
})

t.test('golden vectors', async (t) => {
  checkVectors(t, 'mount', MOUNT_VECTORS, cases)
})

t.test('rejections', async (t) => {
  t.throws(() => V3.MOUNTPROC3_MNT.args.decode(new XdrReader(words(1025))), { code: 'XDR_TOO_LONG' }, 'dirpath<1024>')
  t.throws(() => V3.MOUNTPROC3_MNT.res.decode(new XdrReader(words(3))), { code: 'XDR_BAD_ENUM' }, 'mountstat3 3 is undeclared')
  t.throws(() => V3.MOUNTPROC3_MNT.res.decode(new XdrReader(words(0, 65))), { code: 'XDR_TOO_LONG' }, 'fhandle3<64>')
  t.throws(() => V3.MOUNTPROC3_EXPORT.res.decode(new XdrReader(words(1, 0, 2))), { code: 'XDR_BAD_BOOL' }, 'ex_groups list bool 2')
  t.throws(() => V3.MOUNTPROC3_EXPORT.res.decode(new XdrReader(words(1, 0, 1, 256))), { code: 'XDR_TOO_LONG' }, 'name<255>')
  t.throws(() => V1.MOUNTPROC_MNT.res.decode(new XdrReader(words(0, 1, 2))), { code: 'XDR_SHORT_BUFFER' }, 'fhandle[32] needs 32 bytes')
})
