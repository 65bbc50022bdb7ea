/*
 * Replies that carry attributes, made and encoded: the generated codecs with FLAT_ENCODERS
 * (fattr3 and wcc_attr written in place, xdr/gen/overrides.ts) against the same spec generated
 * without them (a call and a room check a field, xdr/gen/per-field.ts), in one process,
 * alternated rounds, CPU time per reply. The replies are made as the server makes them
 * (server/nfs3/attrs.ts): GETATTR3res one fattr3; LOOKUP3res a handle and two post_op_attrs;
 * WRITE3res a wcc_data (wcc_attr and fattr3); CREATE3res a handle, a fattr3 and a wcc_data.
 *
 *   npx tsx bench/reply-attrs.bench.ts        (tsx: the per-field module is TypeScript)
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as flat from '../xdr/generated/nfs3.ts'
import { nfsstat3, stable_how } from '../xdr/generated/nfs3.ts'
import type { CREATE3res, GETATTR3res, LOOKUP3res, WRITE3res } from '../xdr/generated/nfs3.ts'
import { perFieldModule } from '../xdr/gen/per-field.ts'
import type { Codec } from '../xdr/runtime/codec.ts'
import { XdrWriter } from '../xdr/runtime/writer.ts'
import type { Attr } from '../vfs/types.ts'
import { fattr3Of, postOpAttr, wccData } from '../server/nfs3/attrs.ts'

const N = 200_000
const ROUNDS = 7

function attrOf(i: number): Attr {
  const t = { sec: 1_700_000_000 + i, nsec: 123_456_789 }
  return {
    type: 'file', mode: 0o100644, nlink: 1, uid: 1000, gid: 1000, size: BigInt(i * 4096), used: BigInt(i * 4096),
    rdev: { major: 0, minor: 0 }, fileid: BigInt(1000 + i), gen: 1, atime: t, mtime: t, ctime: t,
  }
}

const attrs = Array.from({ length: 1024 }, (_, i) => attrOf(i))
const handle = { data: Buffer.alloc(32, 7) }
const verf = Buffer.alloc(8)

interface Case<T> { name: string; codec: 'GETATTR3res' | 'LOOKUP3res' | 'WRITE3res' | 'CREATE3res'; make: (a: Attr) => T }

const cases: Case<unknown>[] = [
  { name: 'GETATTR3res', codec: 'GETATTR3res', make: (a): GETATTR3res => ({ status: nfsstat3.NFS3_OK, resok: { obj_attributes: fattr3Of(a, 1n) } }) },
  {
    name: 'LOOKUP3res', codec: 'LOOKUP3res',
    make: (a): LOOKUP3res => ({ status: nfsstat3.NFS3_OK, resok: { object: handle, obj_attributes: postOpAttr(a, 1n), dir_attributes: postOpAttr(a, 1n) } }),
  },
  {
    name: 'WRITE3res', codec: 'WRITE3res',
    make: (a): WRITE3res => ({ status: nfsstat3.NFS3_OK, resok: { file_wcc: wccData(a, a, 1n), count: 4096, committed: stable_how.UNSTABLE, verf } }),
  },
  {
    name: 'CREATE3res', codec: 'CREATE3res',
    make: (a): CREATE3res => ({ status: nfsstat3.NFS3_OK, resok: { obj: handle, obj_attributes: postOpAttr(a, 1n), dir_wcc: wccData(a, a, 1n) } }),
  },
]

function run(codec: Codec<unknown>, make: (a: Attr) => unknown): number {
  const start = process.cpuUsage()
  for (let i = 0; i < N; i++) {
    const w = new XdrWriter(256)
    codec.encode(w, make(attrs[i & 1023] as Attr))
    w.finish()
  }
  const used = process.cpuUsage(start)
  return ((used.user + used.system) * 1000) / N
}

const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[xs.length >> 1] ?? NaN

const dir = await mkdtemp(join(tmpdir(), 'tsnfs-reply-attrs-'))
try {
  const perField = await perFieldModule<typeof flat>('nfs3', dir)
  console.log(`reply         per-field ns   flat ns   ratio   (CPU per reply made and encoded, medians of ${ROUNDS} alternated rounds)`)
  for (const c of cases) {
    const a: number[] = []
    const b: number[] = []
    for (let r = 0; r < ROUNDS; r++) {
      a.push(run(perField[c.codec], c.make))
      b.push(run(flat[c.codec], c.make))
    }
    const [ma, mb] = [median(a), median(b)]
    console.log(`${c.name.padEnd(13)} ${ma.toFixed(0).padStart(12)} ${mb.toFixed(0).padStart(9)} ${(ma / mb).toFixed(2).padStart(7)}`)
  }
} finally {
  await rm(dir, { recursive: true, force: true })
}
