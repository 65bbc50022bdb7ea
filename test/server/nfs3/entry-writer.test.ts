/*
 * The direct READDIR(PLUS) entry encoding (server/nfs3/entry-writer.ts, through
 * xdr/runtime encodedList) against the object path it replaced: entry3 /
 * entryplus3 objects with attrs.ts fattr3Of, encoded by the generated codecs.
 * Same bytes for random entries, the same refusals of values out of range.
 * TSNFS_SEED repeats a run.
 */
import t from 'tap'
import { entry3, entry3List, entryplus3, entryplus3List, READDIRPLUS3res } from '../../../xdr/generated/nfs3.ts'
import { encodeToBuffer } from '../../../xdr/runtime/codec.ts'
import { encodedList } from '../../../xdr/runtime/encoded-list.ts'
import { XdrEncodeError } from '../../../xdr/runtime/errors.ts'
import type { Attr, DirEntry, FileType } from '../../../vfs/types.ts'
import { fattr3Of } from '../../../server/nfs3/attrs.ts'
import { EntryWriter } from '../../../server/nfs3/entry-writer.ts'
import { prng } from '../../helpers/prng.ts'
import { randomValues } from '../../helpers/random-attr.ts'

const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 100000)
t.comment(`seed ${seed}`)
const rand = prng(seed)

const { int, pick, u32, u64, attr: randomAttr } = randomValues(rand)
const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => int(256)))

interface Case {
  e: DirEntry
  attr: Attr | null
  handle: Buffer | null
}

function randomCase(): Case {
  const e: DirEntry = { name: bytes(1 + int(255)), fileid: u64(), cookie: u64() }
  return { e, attr: rand() < 0.15 ? null : randomAttr(), handle: rand() < 0.15 ? null : bytes(pick([32, int(65)])) }
}

/** The object path: what readdirplus.ts built before session 39, encoded by the generated list codec. */
function plusItems(cases: Case[], fsid: bigint): entryplus3[] {
  return cases.map(({ e, attr, handle }) => ({
    fileid: e.fileid,
    name: e.name,
    cookie: e.cookie,
    name_attributes: attr === null ? null : fattr3Of(attr, fsid),
    name_handle: handle === null ? null : { data: handle },
  }))
}

function objectPlus(cases: Case[], fsid: bigint): Buffer {
  return encodeToBuffer(entryplus3List, plusItems(cases, fsid))
}

function directPlus(cases: Case[], fsid: bigint, initial = 1024): Buffer {
  const w = new EntryWriter(initial)
  for (const { e, attr, handle } of cases) w.entryplus3(e, attr, fsid, handle)
  if (w.count !== cases.length) throw new Error(`count ${w.count}, wrote ${cases.length}`)
  return encodeToBuffer(entryplus3List, encodedList(entryplus3, w.finish()))
}

t.test('entryplus3 lists: the same bytes both ways, random entries', async (t) => {
  for (let round = 0; round < 200; round++) {
    const cases = Array.from({ length: int(40) }, randomCase)
    const fsid = BigInt(u32())
    const want = objectPlus(cases, fsid)
    // A small first buffer: the writer grows mid-list.
    const got = directPlus(cases, fsid, pick([64, 1024, 64 * 1024]))
    if (!got.equals(want)) {
      t.fail(`round ${round}: ${got.length} bytes vs ${want.length}, first difference at ${got.findIndex((b, i) => b !== want[i])} (seed ${seed})`)
      return
    }
  }
  t.pass('200 random lists, byte for byte')
})

t.test('entry3 lists: the same bytes both ways, random entries', async (t) => {
  for (let round = 0; round < 200; round++) {
    const entries = Array.from({ length: int(60) }, () => randomCase().e)
    const want = encodeToBuffer(entry3List, entries.map((e) => ({ fileid: e.fileid, name: e.name, cookie: e.cookie })))
    const w = new EntryWriter(64)
    for (const e of entries) w.entry3(e)
    const got = encodeToBuffer(entry3List, encodedList(entry3, w.finish()))
    if (!got.equals(want)) {
      t.fail(`round ${round}: differs (seed ${seed})`)
      return
    }
  }
  t.pass('200 random lists, byte for byte')
})

t.test('a whole READDIRPLUS3res: the same bytes, and read back as the entries written', async (t) => {
  const cases = Array.from({ length: 30 }, randomCase)
  const fsid = 7n
  const dirAttr = fattr3Of(randomAttr(), fsid)
  const items = plusItems(cases, fsid)
  const w = new EntryWriter(4096)
  for (const { e, attr, handle } of cases) w.entryplus3(e, attr, fsid, handle)
  const list = encodedList(entryplus3, w.finish())
  const res = (entries: entryplus3[]): READDIRPLUS3res => ({ status: 0, resok: { dir_attributes: dirAttr, cookieverf: Buffer.alloc(8), reply: { entries, eof: true } } })
  t.ok(encodeToBuffer(READDIRPLUS3res, res(list)).equals(encodeToBuffer(READDIRPLUS3res, res(items))), 'reply bytes')
  // A reader of the handler's result sees the list on the wire (nfstime clamps included).
  t.equal(list.length, items.length)
  t.same(list, items)
  t.same(
    list.map((e) => e.cookie),
    cases.map((c) => c.e.cookie),
  )
})

t.test('an encoded list changed by a reader is encoded from its items', async (t) => {
  const cases = Array.from({ length: 5 }, randomCase)
  const w = new EntryWriter(1024)
  for (const { e, attr, handle } of cases) w.entryplus3(e, attr, 1n, handle)
  const list = encodedList(entryplus3, w.finish())
  list.pop()
  t.ok(encodeToBuffer(entryplus3List, list).equals(objectPlus(cases.slice(0, 4), 1n)), 'the four items left')
})

t.test('values out of their XDR range are refused both ways', async (t) => {
  const base = (): Attr => ({ ...randomAttr(), type: 'file' })
  const bad: [string, Case][] = [
    ['nlink 2^32', { e: { name: bytes(3), fileid: 1n, cookie: 3n }, attr: { ...base(), nlink: 2 ** 32 }, handle: null }],
    ['uid -1', { e: { name: bytes(3), fileid: 1n, cookie: 3n }, attr: { ...base(), uid: -1 }, handle: null }],
    ['size 2^64', { e: { name: bytes(3), fileid: 1n, cookie: 3n }, attr: { ...base(), size: 2n ** 64n }, handle: null }],
    ['nsec 2^32', { e: { name: bytes(3), fileid: 1n, cookie: 3n }, attr: { ...base(), mtime: { sec: 0, nsec: 2 ** 32 } }, handle: null }],
    ['sec NaN', { e: { name: bytes(3), fileid: 1n, cookie: 3n }, attr: { ...base(), atime: { sec: NaN, nsec: 0 } }, handle: null }],
    ['unknown type', { e: { name: bytes(3), fileid: 1n, cookie: 3n }, attr: { ...base(), type: 'door' as FileType }, handle: null }],
    ['fileid -1', { e: { name: bytes(3), fileid: -1n, cookie: 3n }, attr: null, handle: null }],
    ['cookie 2^64', { e: { name: bytes(3), fileid: 1n, cookie: 2n ** 64n }, attr: null, handle: null }],
    ['handle of 65 bytes', { e: { name: bytes(3), fileid: 1n, cookie: 3n }, attr: null, handle: bytes(65) }],
  ]
  for (const [what, c] of bad) {
    t.throws(() => objectPlus([c], 1n), XdrEncodeError, `${what}: the codec refuses it`)
    t.throws(
      () => {
        new EntryWriter(64).entryplus3(c.e, c.attr, 1n, c.handle)
      },
      XdrEncodeError,
      `${what}: so does the writer`,
    )
  }
})

/** A minter that writes each case's own handle, as Nfs3Host.writeHandle writes an export's. */
function minterOf(handles: Map<bigint, Buffer>): { writeHandle: (exportId: number, ref: { id: bigint }, out: Buffer, at: number) => number } {
  return {
    writeHandle: (_exportId, ref, out, at) => {
      const h = handles.get(ref.id)
      if (h === undefined) throw new Error(`no handle for ${String(ref.id)}`)
      return h.copy(out, at)
    },
  }
}

t.test('entryplus3Minted: the bytes of entryplus3 with the same handle, random entries and writer sizes', async (t) => {
  for (let round = 0; round < 100; round++) {
    const cases = Array.from({ length: 1 + int(40) }, () => {
      const c = randomCase()
      return c.handle === null ? c : { ...c, handle: c.handle.subarray(0, Math.min(c.handle.length, 64)) }
    })
    const handles = new Map(cases.map((c, i) => [BigInt(i), c.handle ?? Buffer.alloc(0)]))
    const mint = minterOf(handles)
    const fsid = u64()
    const w = new EntryWriter(1 + int(4096))
    cases.forEach((c, i) => {
      if (c.handle === null) w.entryplus3(c.e, c.attr, fsid, null)
      else w.entryplus3Minted(c.e, c.attr, fsid, mint, 7, { id: BigInt(i), gen: 0 }, c.handle.length)
    })
    const got = encodeToBuffer(entryplus3List, encodedList(entryplus3, w.finish()))
    if (!got.equals(objectPlus(cases, fsid))) {
      t.fail(`round ${String(round)}: bytes differ (seed ${String(seed)})`)
      return
    }
  }
  t.pass('100 rounds, same bytes')
})

t.test('entryplus3Minted refuses a handle longer than NFS3_FHSIZE and a mint of another length than sized', async (t) => {
  const e: DirEntry = { name: bytes(3), fileid: 1n, cookie: 3n }
  const mint = minterOf(new Map([[1n, bytes(32)]]))
  t.throws(() => { new EntryWriter(64).entryplus3Minted(e, null, 1n, mint, 1, { id: 1n, gen: 0 }, 65) }, XdrEncodeError, 'sized 65 bytes')
  t.throws(() => { new EntryWriter(64).entryplus3Minted(e, null, 1n, mint, 1, { id: 1n, gen: 0 }, 16) }, /minted 32 bytes long, sized as 16/, 'minted 32, sized 16')
})
