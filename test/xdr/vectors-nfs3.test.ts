import t from 'tap'
import { NFS_PROGRAM, type fattr3, type sattr3, type wcc_data } from '../../xdr/generated/nfs3.ts'
import { XdrReader } from '../../xdr/runtime/reader.ts'
import { XdrWriter } from '../../xdr/runtime/writer.ts'
import { type Case, checkVectors, vec } from '../fixtures/wire/check.ts'
import { ATTR_CHR, ATTR_DIR, ATTR_FILE, BIG_DATA, FH18, FH32, FH64, FHDIR, NAME_1, NAME_2, NAME_3, NAME_5, NAME_7, NAME_LATIN1, READ_DATA, T1, T2, T3, VERF_A, VERF_B, VERF_ZERO, WCC_BEFORE, WRITE_DATA } from '../fixtures/wire/data.ts'
import { bytesOf, u32 } from '../fixtures/wire/layout.ts'
import { fattr3 as fattr3Layout, fh } from '../fixtures/wire/nfs3-parts.ts'
import { NFS3_VECTORS } from '../fixtures/wire/vectors-nfs3.ts'

/* A call and a reply (and failure replies) of every NFSv3 procedure against hand-built fixtures (RFC 1813 §3.3). */

const P = NFS_PROGRAM.versions.NFS_V3.procs

const A_FILE: fattr3 = ATTR_FILE
const A_DIR: fattr3 = ATTR_DIR
const A_CHR: fattr3 = ATTR_CHR
const fh3 = (data: Buffer): { data: Buffer } => ({ data })
const wccOf = (before: typeof WCC_BEFORE | null, after: fattr3 | null): wcc_data => ({ before, after })
const S_NONE: sattr3 = { mode: null, uid: null, gid: null, size: null, atime: { set_it: 0 }, mtime: { set_it: 0 } }
const sMode = (mode: number): sattr3 => ({ ...S_NONE, mode })

const cases: Case[] = [
  vec('nfs3-null-call', P.NFSPROC3_NULL.args, undefined),
  vec('nfs3-null-reply', P.NFSPROC3_NULL.res, undefined),

  vec('nfs3-getattr-call', P.NFSPROC3_GETATTR.args, { object: fh3(FH32) }),
  vec('nfs3-getattr-reply', P.NFSPROC3_GETATTR.res, { status: 0, resok: { obj_attributes: A_FILE } }),
  vec('nfs3-getattr-reply-fail', P.NFSPROC3_GETATTR.res, { status: 70 }),

  vec('nfs3-setattr-call', P.NFSPROC3_SETATTR.args, {
    object: fh3(FH32),
    new_attributes: { mode: 0o600, uid: null, gid: null, size: 0x1_0000_0000n, atime: { set_it: 1 }, mtime: { set_it: 2, mtime: T3 } },
    guard: T2,
  }),
  vec('nfs3-setattr-call-owner', P.NFSPROC3_SETATTR.args, {
    object: fh3(FH18),
    new_attributes: { mode: null, uid: 1000, gid: 100, size: null, atime: { set_it: 2, atime: T1 }, mtime: { set_it: 1 } },
    guard: null,
  }),
  vec('nfs3-setattr-reply', P.NFSPROC3_SETATTR.res, { status: 0, resok: { obj_wcc: wccOf(null, A_FILE) } }),
  vec('nfs3-setattr-reply-fail', P.NFSPROC3_SETATTR.res, { status: 10002, resfail: { obj_wcc: wccOf(WCC_BEFORE, A_FILE) } }),

  vec('nfs3-lookup-call', P.NFSPROC3_LOOKUP.args, { what: { dir: fh3(FHDIR), name: NAME_7 } }),
  vec('nfs3-lookup-reply', P.NFSPROC3_LOOKUP.res, { status: 0, resok: { object: fh3(FH18), obj_attributes: A_FILE, dir_attributes: null } }),
  vec('nfs3-lookup-reply-fail', P.NFSPROC3_LOOKUP.res, { status: 2, resfail: { dir_attributes: A_DIR } }),

  vec('nfs3-access-call', P.NFSPROC3_ACCESS.args, { object: fh3(FH32), access: 0x3f }),
  vec('nfs3-access-reply', P.NFSPROC3_ACCESS.res, { status: 0, resok: { obj_attributes: null, access: 0x1f } }),
  vec('nfs3-access-reply-fail', P.NFSPROC3_ACCESS.res, { status: 13, resfail: { obj_attributes: A_FILE } }),

  vec('nfs3-readlink-call', P.NFSPROC3_READLINK.args, { symlink: fh3(FH18) }),
  vec('nfs3-readlink-reply', P.NFSPROC3_READLINK.res, { status: 0, resok: { symlink_attributes: null, data: Buffer.from('../target') } }),

  vec('nfs3-read-call', P.NFSPROC3_READ.args, { file: fh3(FH32), offset: 0x1_0000_1000n, count: 32768 }),
  vec('nfs3-read-reply', P.NFSPROC3_READ.res, { status: 0, resok: { file_attributes: A_FILE, count: 5, eof: true, data: READ_DATA } }),
  vec('nfs3-read-reply-big', P.NFSPROC3_READ.res, { status: 0, resok: { file_attributes: null, count: 513, eof: false, data: BIG_DATA } }),
  vec('nfs3-read-reply-fail', P.NFSPROC3_READ.res, { status: 5, resfail: { file_attributes: null } }),

  vec('nfs3-write-call', P.NFSPROC3_WRITE.args, { file: fh3(FH32), offset: 8192n, count: 11, stable: 2, data: WRITE_DATA }),
  vec('nfs3-write-reply', P.NFSPROC3_WRITE.res, { status: 0, resok: { file_wcc: wccOf(WCC_BEFORE, A_FILE), count: 11, committed: 2, verf: VERF_B } }),
  vec('nfs3-write-reply-fail', P.NFSPROC3_WRITE.res, { status: 28, resfail: { file_wcc: wccOf(null, null) } }),

  vec('nfs3-create-call', P.NFSPROC3_CREATE.args, { where: { dir: fh3(FHDIR), name: NAME_5 }, how: { mode: 0, obj_attributes: sMode(0o644) } }),
  vec('nfs3-create-call-guarded', P.NFSPROC3_CREATE.args, { where: { dir: fh3(FHDIR), name: NAME_2 }, how: { mode: 1, obj_attributes: S_NONE } }),
  vec('nfs3-create-call-exclusive', P.NFSPROC3_CREATE.args, { where: { dir: fh3(FHDIR), name: NAME_1 }, how: { mode: 2, verf: VERF_A } }),
  vec('nfs3-create-reply', P.NFSPROC3_CREATE.res, { status: 0, resok: { obj: fh3(FH32), obj_attributes: A_FILE, dir_wcc: wccOf(null, A_DIR) } }),
  vec('nfs3-create-reply-fail', P.NFSPROC3_CREATE.res, { status: 17, resfail: { dir_wcc: wccOf(WCC_BEFORE, null) } }),

  vec('nfs3-mkdir-call', P.NFSPROC3_MKDIR.args, { where: { dir: fh3(FHDIR), name: NAME_3 }, attributes: sMode(0o755) }),
  vec('nfs3-mkdir-reply', P.NFSPROC3_MKDIR.res, { status: 0, resok: { obj: fh3(FH18), obj_attributes: null, dir_wcc: wccOf(null, A_DIR) } }),
  vec('nfs3-mkdir-reply-fail', P.NFSPROC3_MKDIR.res, { status: 63, resfail: { dir_wcc: wccOf(null, null) } }),

  vec('nfs3-symlink-call', P.NFSPROC3_SYMLINK.args, {
    where: { dir: fh3(FHDIR), name: NAME_2 },
    symlink: { symlink_attributes: S_NONE, symlink_data: Buffer.from('/tmp/x') },
  }),
  vec('nfs3-symlink-reply', P.NFSPROC3_SYMLINK.res, { status: 0, resok: { obj: null, obj_attributes: null, dir_wcc: wccOf(null, A_DIR) } }),

  vec('nfs3-mknod-call', P.NFSPROC3_MKNOD.args, {
    where: { dir: fh3(FHDIR), name: NAME_1 },
    what: { type: 4, device: { dev_attributes: sMode(0o666), spec: { specdata1: 1, specdata2: 3 } } },
  }),
  vec('nfs3-mknod-call-fifo', P.NFSPROC3_MKNOD.args, { where: { dir: fh3(FHDIR), name: NAME_3 }, what: { type: 7, pipe_attributes: sMode(0o600) } }),
  vec('nfs3-mknod-call-reg', P.NFSPROC3_MKNOD.args, { where: { dir: fh3(FHDIR), name: NAME_2 }, what: { type: 1 } }),
  vec('nfs3-mknod-reply', P.NFSPROC3_MKNOD.res, { status: 0, resok: { obj: fh3(FH32), obj_attributes: A_CHR, dir_wcc: wccOf(WCC_BEFORE, A_DIR) } }),
  vec('nfs3-mknod-reply-fail', P.NFSPROC3_MKNOD.res, { status: 10007, resfail: { dir_wcc: wccOf(null, A_DIR) } }),

  vec('nfs3-remove-call', P.NFSPROC3_REMOVE.args, { object: { dir: fh3(FHDIR), name: NAME_5 } }),
  vec('nfs3-remove-reply', P.NFSPROC3_REMOVE.res, { status: 0, resok: { dir_wcc: wccOf(WCC_BEFORE, A_DIR) } }),
  vec('nfs3-remove-reply-fail', P.NFSPROC3_REMOVE.res, { status: 2, resfail: { dir_wcc: wccOf(null, A_DIR) } }),

  vec('nfs3-rmdir-call', P.NFSPROC3_RMDIR.args, { object: { dir: fh3(FHDIR), name: NAME_3 } }),
  vec('nfs3-rmdir-reply', P.NFSPROC3_RMDIR.res, { status: 0, resok: { dir_wcc: wccOf(null, A_DIR) } }),
  vec('nfs3-rmdir-reply-fail', P.NFSPROC3_RMDIR.res, { status: 66, resfail: { dir_wcc: wccOf(WCC_BEFORE, A_DIR) } }),

  vec('nfs3-rename-call', P.NFSPROC3_RENAME.args, { from: { dir: fh3(FHDIR), name: NAME_5 }, to: { dir: fh3(FH32), name: NAME_LATIN1 } }),
  vec('nfs3-rename-reply', P.NFSPROC3_RENAME.res, { status: 0, resok: { fromdir_wcc: wccOf(WCC_BEFORE, A_DIR), todir_wcc: wccOf(null, A_DIR) } }),
  vec('nfs3-rename-reply-fail', P.NFSPROC3_RENAME.res, { status: 18, resfail: { fromdir_wcc: wccOf(null, null), todir_wcc: wccOf(null, A_DIR) } }),

  vec('nfs3-link-call', P.NFSPROC3_LINK.args, { file: fh3(FH32), link: { dir: fh3(FHDIR), name: NAME_7 } }),
  vec('nfs3-link-reply', P.NFSPROC3_LINK.res, { status: 0, resok: { file_attributes: A_FILE, linkdir_wcc: wccOf(null, A_DIR) } }),
  vec('nfs3-link-reply-fail', P.NFSPROC3_LINK.res, { status: 17, resfail: { file_attributes: A_FILE, linkdir_wcc: wccOf(WCC_BEFORE, A_DIR) } }),

  vec('nfs3-readdir-call', P.NFSPROC3_READDIR.args, { dir: fh3(FHDIR), cookie: 0n, cookieverf: VERF_ZERO, count: 4096 }),
  vec('nfs3-readdir-reply', P.NFSPROC3_READDIR.res, {
    status: 0,
    resok: {
      dir_attributes: A_DIR,
      cookieverf: VERF_A,
      reply: {
        entries: [
          { fileid: 2n, name: NAME_1, cookie: 1n },
          { fileid: 0x8000_0000_0000_0001n, name: NAME_7, cookie: 0x100_0000_0000n },
        ],
        eof: true,
      },
    },
  }),
  vec('nfs3-readdir-reply-fail', P.NFSPROC3_READDIR.res, { status: 10003, resfail: { dir_attributes: null } }),

  vec('nfs3-readdirplus-call', P.NFSPROC3_READDIRPLUS.args, { dir: fh3(FHDIR), cookie: 0x100_0000_0000n, cookieverf: VERF_A, dircount: 1024, maxcount: 8192 }),
  vec('nfs3-readdirplus-reply', P.NFSPROC3_READDIRPLUS.res, {
    status: 0,
    resok: {
      dir_attributes: null,
      cookieverf: VERF_A,
      reply: {
        entries: [
          { fileid: 0x8000_0000_0000_0001n, name: NAME_5, cookie: 3n, name_attributes: A_FILE, name_handle: fh3(FH32) },
          { fileid: 7n, name: NAME_2, cookie: 4n, name_attributes: null, name_handle: null },
        ],
        eof: false,
      },
    },
  }),
  vec('nfs3-readdirplus-reply-fail', P.NFSPROC3_READDIRPLUS.res, { status: 10004, resfail: { dir_attributes: A_DIR } }),

  vec('nfs3-fsstat-call', P.NFSPROC3_FSSTAT.args, { fsroot: fh3(FHDIR) }),
  vec('nfs3-fsstat-reply', P.NFSPROC3_FSSTAT.res, {
    status: 0,
    resok: {
      obj_attributes: null,
      tbytes: 0x100_0000_0000n,
      fbytes: 0x80_0000_0000n,
      abytes: 0x7f_0000_0000n,
      tfiles: 10_000_000n,
      ffiles: 9_000_000n,
      afiles: 8_999_999n,
      invarsec: 0,
    },
  }),
  vec('nfs3-fsstat-reply-fail', P.NFSPROC3_FSSTAT.res, { status: 10006, resfail: { obj_attributes: null } }),

  vec('nfs3-fsinfo-call', P.NFSPROC3_FSINFO.args, { fsroot: fh3(FHDIR) }),
  vec('nfs3-fsinfo-reply', P.NFSPROC3_FSINFO.res, {
    status: 0,
    resok: {
      obj_attributes: A_DIR,
      rtmax: 1_048_576,
      rtpref: 65_536,
      rtmult: 4096,
      wtmax: 1_048_576,
      wtpref: 65_536,
      wtmult: 4096,
      dtpref: 8192,
      maxfilesize: 0x7fff_ffff_ffff_ffffn,
      time_delta: { seconds: 0, nseconds: 1 },
      properties: 0x1b,
    },
  }),
  vec('nfs3-fsinfo-reply-fail', P.NFSPROC3_FSINFO.res, { status: 70, resfail: { obj_attributes: null } }),

  vec('nfs3-pathconf-call', P.NFSPROC3_PATHCONF.args, { object: fh3(FH32) }),
  vec('nfs3-pathconf-reply', P.NFSPROC3_PATHCONF.res, {
    status: 0,
    resok: { obj_attributes: A_FILE, linkmax: 32000, name_max: 255, no_trunc: true, chown_restricted: true, case_insensitive: false, case_preserving: true },
  }),
  vec('nfs3-pathconf-reply-fail', P.NFSPROC3_PATHCONF.res, { status: 10001, resfail: { obj_attributes: null } }),

  vec('nfs3-commit-call', P.NFSPROC3_COMMIT.args, { file: fh3(FH64), offset: 0x1_0000_0000n, count: 0 }),
  vec('nfs3-commit-reply', P.NFSPROC3_COMMIT.res, { status: 0, resok: { file_wcc: wccOf(WCC_BEFORE, A_FILE), verf: VERF_B } }),
  vec('nfs3-commit-reply-fail', P.NFSPROC3_COMMIT.res, { status: 10008, resfail: { file_wcc: wccOf(null, A_FILE) } }),
]

t.test('every procedure has a call and a reply vector', async (t) => {
  const names = Object.keys(P)
  t.equal(names.length, 22)
  for (const name of names) {
    const stem = `nfs3-${name.replace(/^NFSPROC3_/, '').toLowerCase()}`
    t.ok(cases.some((c) => c.name === `${stem}-call`), `${name} call`)
    t.ok(cases.some((c) => c.name === `${stem}-reply`), `${name} reply`)
  }
})

t.test('golden vectors', async (t) => {
  checkVectors(t, 'nfs3', NFS3_VECTORS, cases)
})

const words = (...ws: number[]): Buffer => bytesOf(ws.map((w) => u32(w, '')))

t.test('rejections, exact bytes', async (t) => {
  // GETATTR reply whose fattr3.type is 8: not an ftype3 (RFC 4506 §4.3).
  const badType = bytesOf([u32(0, 'NFS3_OK'), ...fattr3Layout({ ...ATTR_FILE, type: 8 } as unknown as typeof ATTR_FILE)])
  t.equal(badType.readUInt32BE(4), 8)
  t.throws(() => P.NFSPROC3_GETATTR.res.decode(new XdrReader(badType)), { name: 'XdrDecodeError', code: 'XDR_BAD_ENUM' }, 'ftype3 8 inside fattr3')
  t.throws(() => P.NFSPROC3_GETATTR.res.decode(new XdrReader(words(0, 0))), { code: 'XDR_BAD_ENUM' }, 'ftype3 0')

  // nfs_fh3 with a 65-byte handle: NFS3_FHSIZE is 64 (P12); rejected before the data.
  const fh65 = bytesOf(fh(Buffer.alloc(65, 1)))
  t.equal(fh65.readUInt32BE(0), 65)
  const r = new XdrReader(fh65)
  t.throws(() => P.NFSPROC3_GETATTR.args.decode(r), { code: 'XDR_TOO_LONG' }, 'nfs_fh3 length 65')
  t.equal(r.pos, 4, 'only the length was read')
  t.throws(() => { P.NFSPROC3_GETATTR.args.encode(new XdrWriter(), { object: { data: Buffer.alloc(65) } }) }, { code: 'XDR_ENCODE' }, 'and never encoded')

  // CREATE with createmode3 3.
  const badMode = Buffer.concat([bytesOf(fh(FHDIR)), bytesOf([u32(1, ''), { bytes: Buffer.from('x\0\0\0'), note: '' }]), words(3, 0, 0, 0, 0, 0, 0)])
  t.throws(() => P.NFSPROC3_CREATE.args.decode(new XdrReader(badMode)), { code: 'XDR_BAD_ENUM' }, 'createhow3 mode 3')

  // Other undeclared discriminants and bad bools.
  t.throws(() => P.NFSPROC3_GETATTR.res.decode(new XdrReader(words(3))), { code: 'XDR_BAD_ENUM' }, 'nfsstat3 3')
  t.throws(() => P.NFSPROC3_WRITE.args.decode(new XdrReader(Buffer.concat([bytesOf(fh(FH32)), words(0, 0, 1, 3, 0)]))), { code: 'XDR_BAD_ENUM' }, 'stable_how 3')
  t.throws(() => P.NFSPROC3_SETATTR.args.decode(new XdrReader(Buffer.concat([bytesOf(fh(FH32)), words(2)]))), { code: 'XDR_BAD_BOOL' }, 'set_mode3 bool 2')
  t.throws(() => P.NFSPROC3_SETATTR.args.decode(new XdrReader(Buffer.concat([bytesOf(fh(FH32)), words(0, 0, 0, 0, 3)]))), { code: 'XDR_BAD_ENUM' }, 'time_how 3')
  t.throws(() => P.NFSPROC3_MKNOD.args.decode(new XdrReader(Buffer.concat([bytesOf(fh(FHDIR)), words(0, 9)]))), { code: 'XDR_BAD_ENUM' }, 'mknoddata3 ftype 9')

  // P8: a SET_TO_SERVER_TIME followed by a stray timestamp misaligns everything after it; here that is trailing bytes.
  const stray = Buffer.concat([bytesOf(fh(FH32)), words(0, 0, 0, 0, 1, 0, 0), words(1, 2)])
  const rs = new XdrReader(stray)
  P.NFSPROC3_SETATTR.args.decode(rs)
  t.throws(() => { rs.done() }, { code: 'XDR_TRAILING_BYTES' })

  // READDIR reply truncated inside the second entry.
  const full = Buffer.from(bytesOf(NFS3_VECTORS['nfs3-readdir-reply']!.items))
  for (const cut of [4, 88, 100, full.length - 4]) {
    t.throws(() => P.NFSPROC3_READDIR.res.decode(new XdrReader(full.subarray(0, cut))), { code: 'XDR_SHORT_BUFFER' }, `truncated at ${cut}`)
  }
})

t.test('decoded names and data are views into the record', async (t) => {
  const bytes = Buffer.from(bytesOf(NFS3_VECTORS['nfs3-write-call']!.items))
  const v = P.NFSPROC3_WRITE.args.decode(new XdrReader(bytes))
  t.equal(v.data.buffer, bytes.buffer)
  bytes[bytes.length - 2] = 0x21 // last data byte, before the 1 padding byte
  t.equal(v.data.toString(), 'hello worl!')
})
