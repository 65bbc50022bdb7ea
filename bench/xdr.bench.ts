/* Hot-path codecs: fattr3, READ3res with 128 KiB of data, a 100-entry READDIRPLUS reply. */
import { READ3res, READDIRPLUS3res, fattr3 } from '../xdr/generated/nfs3.ts'
import type { entryplus3 } from '../xdr/generated/nfs3.ts'
import { XdrReader } from '../xdr/runtime/reader.ts'
import { XdrWriter } from '../xdr/runtime/writer.ts'
import { encodeToBuffer } from '../xdr/runtime/codec.ts'
import { measure } from './harness.ts'
import type { Result } from './harness.ts'

const t = { seconds: 1_700_000_000, nseconds: 123_456_789 }
const attr: fattr3 = {
  type: 1, mode: 0o644, nlink: 1, uid: 1000, gid: 1000, size: 123_456n, used: 131_072n,
  rdev: { specdata1: 0, specdata2: 0 }, fsid: 42n, fileid: 1_234_567n, atime: t, mtime: t, ctime: t,
}
const read: READ3res = { status: 0, resok: { file_attributes: attr, count: 131_072, eof: false, data: Buffer.alloc(131_072, 7) } }
const entries: entryplus3[] = Array.from({ length: 100 }, (_, i) => ({
  fileid: BigInt(1000 + i), name: Buffer.from(`file-${i}.txt`), cookie: BigInt(3 + i),
  name_attributes: attr, name_handle: { data: Buffer.alloc(32, i) },
}))
const rdp: READDIRPLUS3res = { status: 0, resok: { dir_attributes: attr, cookieverf: Buffer.alloc(8), reply: { entries, eof: true } } }

export function xdrBenches(): Result[] {
  const fattrBytes = encodeToBuffer(fattr3, attr)
  const readBytes = encodeToBuffer(READ3res, read)
  const rdpBytes = encodeToBuffer(READDIRPLUS3res, rdp)
  return [
    measure('encode fattr3', () => { const w = new XdrWriter(128); fattr3.encode(w, attr); w.finish() }),
    measure('decode fattr3', () => fattr3.decode(new XdrReader(fattrBytes))),
    measure('encode READ3res 128 KiB', () => { const w = new XdrWriter(256); READ3res.encode(w, read); w.finish() }),
    measure('decode READ3res 128 KiB', () => READ3res.decode(new XdrReader(readBytes))),
    measure('encode READDIRPLUS3res 100 entries', () => { const w = new XdrWriter(16384); READDIRPLUS3res.encode(w, rdp); w.finish() }, 1000, 100),
    measure('decode READDIRPLUS3res 100 entries', () => READDIRPLUS3res.decode(new XdrReader(rdpBytes)), 1000, 100),
  ]
}
