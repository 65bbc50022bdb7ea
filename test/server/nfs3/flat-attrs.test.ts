/*
 * Replies that carry attributes, encoded by the generated codecs with
 * FLAT_ENCODERS (fattr3 and wcc_attr written in place, xdr/gen/overrides.ts)
 * and by the same spec generated without them (a field at a time, as before
 * session 39): GETATTR, LOOKUP, CREATE, SETATTR and WRITE replies made as the
 * server makes them (server/nfs3/attrs.ts) from random Attr values, the same
 * bytes both ways; values out of range refused both ways in the same words.
 * TSNFS_SEED repeats a run.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import * as flat from '../../../xdr/generated/nfs3.ts'
import { nfsstat3, stable_how } from '../../../xdr/generated/nfs3.ts'
import type { CREATE3res, GETATTR3res, LOOKUP3res, SETATTR3res, WRITE3res } from '../../../xdr/generated/nfs3.ts'
import { emitModule } from '../../../xdr/gen/emit.ts'
import { parse } from '../../../xdr/gen/parser.ts'
import { perFieldModule } from '../../../xdr/gen/per-field.ts'
import type { Codec } from '../../../xdr/runtime/codec.ts'
import { XdrEncodeError } from '../../../xdr/runtime/errors.ts'
import { XdrWriter } from '../../../xdr/runtime/writer.ts'
import type { Attr, FileType } from '../../../vfs/types.ts'
import { fattr3Of, postOpAttr, wccData } from '../../../server/nfs3/attrs.ts'
import { prng } from '../../helpers/prng.ts'
import { randomValues } from '../../helpers/random-attr.ts'

const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 100000)
t.comment(`seed ${seed}`)
const rand = prng(seed)

const { int, pick, u32, u64, attr: randomAttr } = randomValues(rand)

/** Attributes, or none (post_op_attr FALSE, wcc_data without `before`) one time in five. */
const maybe = (): Attr | null => (rand() < 0.2 ? null : randomAttr())
const handle = (): { data: Buffer } => ({ data: Buffer.alloc(pick([8, 32, 64]), int(256)) })

type Replies = Record<'GETATTR3res' | 'LOOKUP3res' | 'CREATE3res' | 'SETATTR3res' | 'WRITE3res', unknown>

/** One random reply of each kind, as the procs in server/nfs3/procs build them. */
function randomReplies(attrs: () => Attr | null = maybe): Replies {
  const fsid = u64()
  const a = (): Attr => attrs() ?? randomAttr()
  const getattr: GETATTR3res = { status: nfsstat3.NFS3_OK, resok: { obj_attributes: fattr3Of(a(), fsid) } }
  const lookup: LOOKUP3res =
    rand() < 0.2
      ? { status: nfsstat3.NFS3ERR_NOENT, resfail: { dir_attributes: postOpAttr(attrs(), fsid) } }
      : { status: nfsstat3.NFS3_OK, resok: { object: handle(), obj_attributes: postOpAttr(attrs(), fsid), dir_attributes: postOpAttr(attrs(), fsid) } }
  const create: CREATE3res = {
    status: nfsstat3.NFS3_OK,
    resok: { obj: rand() < 0.2 ? null : handle(), obj_attributes: postOpAttr(attrs(), fsid), dir_wcc: wccData(attrs(), attrs(), fsid) },
  }
  const setattr: SETATTR3res = { status: nfsstat3.NFS3_OK, resok: { obj_wcc: wccData(attrs(), attrs(), fsid) } }
  const write: WRITE3res = {
    status: nfsstat3.NFS3_OK,
    resok: { file_wcc: wccData(attrs(), attrs(), fsid), count: u32(), committed: pick([stable_how.UNSTABLE, stable_how.FILE_SYNC]), verf: Buffer.alloc(8, int(256)) },
  }
  return { GETATTR3res: getattr, LOOKUP3res: lookup, CREATE3res: create, SETATTR3res: setattr, WRITE3res: write }
}

/** The bytes, or the refusal's message. */
function encode(codec: Codec<unknown>, value: unknown): Buffer | string {
  const w = new XdrWriter(64)
  try {
    codec.encode(w, value)
  } catch (err) {
    if (err instanceof XdrEncodeError) return `XdrEncodeError: ${err.message}`
    throw err
  }
  return w.toBuffer()
}

const dir = await mkdtemp(join(tmpdir(), 'tsnfs-flat-attrs-'))
t.teardown(() => rm(dir, { recursive: true, force: true }))
const perField = await perFieldModule<typeof flat>('nfs3', dir)

t.test('the per-field module is the one before FLAT_ENCODERS, the generated one is flat', async (t) => {
  // Else the comparisons below would compare a codec with itself.
  t.match(perField.fattr3.encode.toString(), /nfstime3\.encode/)
  t.notMatch(flat.fattr3.encode.toString(), /nfstime3\.encode/)
  t.match(flat.wcc_attr.encode.toString(), /w\.room\(24\)/)
})

t.test('replies with random attributes: the same bytes both ways', async (t) => {
  let compared = 0
  for (let round = 0; round < 500; round++) {
    const replies = randomReplies()
    for (const [name, value] of Object.entries(replies)) {
      const key = name as keyof Replies
      const want = encode(perField[key], value)
      const got = encode(flat[key], value)
      if (typeof want === 'string' || typeof got === 'string' || !got.equals(want)) {
        t.fail(`round ${round} ${name}: ${String(typeof got === 'string' ? got : got.length)} vs ${String(typeof want === 'string' ? want : want.length)} (seed ${seed})`)
        return
      }
      compared++
    }
  }
  t.equal(compared, 2500, '500 rounds of five replies, byte for byte')
})

/** An Attr with one field out of its XDR type's range (fattr3Of passes it through; the encoder must refuse it). */
function badAttr(): { attr: Attr; what: string } {
  const a = randomAttr()
  const what = pick(['nlink', 'uid', 'gid', 'size', 'used', 'fileid', 'rdev', 'nsec', 'type', 'nlink-fraction'])
  switch (what) {
    case 'nlink':
      return { attr: { ...a, nlink: 2 ** 32 }, what }
    case 'nlink-fraction':
      return { attr: { ...a, nlink: 1.5 }, what }
    case 'uid':
      return { attr: { ...a, uid: -1 }, what }
    case 'gid':
      return { attr: { ...a, gid: 2 ** 40 }, what }
    case 'size':
      return { attr: { ...a, size: -1n }, what }
    case 'used':
      return { attr: { ...a, used: 2n ** 64n }, what }
    case 'fileid':
      return { attr: { ...a, fileid: 2n ** 64n + 5n }, what }
    case 'rdev':
      return { attr: { ...a, rdev: { major: 2 ** 32, minor: 0 } }, what }
    case 'nsec':
      return { attr: { ...a, mtime: { sec: 0, nsec: -1 } }, what }
    default:
      // A vfs type with no ftype3: fattr3Of gives undefined for `type`.
      return { attr: { ...a, type: 'door' as FileType }, what }
  }
}

t.test('values out of range: refused both ways, in the same words', async (t) => {
  for (let round = 0; round < 200; round++) {
    const { attr, what } = badAttr()
    // Every attribute a reply carries is the bad one, so each kind of reply meets it.
    const replies = randomReplies(() => attr)
    for (const [name, value] of Object.entries(replies)) {
      const key = name as keyof Replies
      const want = encode(perField[key], value)
      const got = encode(flat[key], value)
      if (typeof want !== 'string' || got !== want) {
        t.fail(`round ${round} ${name} (${what}): ${typeof got === 'string' ? got : 'bytes'} vs ${typeof want === 'string' ? want : 'bytes'} (seed ${seed})`)
        return
      }
    }
  }
  t.pass('200 rounds of bad attributes, every reply refused alike')
})

t.test('a refused flat struct leaves the message as it was', async (t) => {
  const w = new XdrWriter(64)
  w.u32(7)
  t.throws(() => {
    flat.fattr3.encode(w, fattr3Of({ ...randomAttr(), fileid: -1n }, 1n))
  }, XdrEncodeError)
  t.same(w.toBuffer(), Buffer.from([0, 0, 0, 7]))
})

t.test('the generator refuses a flat encoder for a struct that is not fixed-size', async (t) => {
  const src = 'struct s { unsigned int a; opaque b<>; };\nstruct f { hyper a; bool b; };'
  t.throws(() => emitModule(parse(src, 'snip.x'), 'snip.x', new Set(['s'])), /FLAT_ENCODERS s\.b is not fixed-size/)
  const out = emitModule(parse(src, 'snip.x'), 'snip.x', new Set(['f']))
  t.match(out, /s\.setBigInt64\(at, checkI64\(v\.a\)\)/)
  t.match(out, /s\.setUint32\(at \+ 8, v\.b \? 1 : 0\)/)
  t.match(out, /import \{ checkI64 \} from '\.\.\/runtime\/checks\.ts'/)
})
