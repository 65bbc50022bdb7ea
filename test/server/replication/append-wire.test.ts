/*
 * The sender ships the change log's own bytes (append-wire.ts): an APPEND built from the logged
 * XDR, with each WRITE's data spliced in, is byte for byte the generated repl_append_args encoding
 * of the same changes, and the standby's decoder reads back exactly those changes. Checked for
 * records read from memory and from the segment files, for every change kind (seeded: TSNFS_SEED),
 * data lengths on and off a 4-byte boundary and past the writer's by-reference size.
 */
import t from 'tap'
import { join } from 'node:path'
import { wireAppendArgs } from '../../../server/replication/append-wire.ts'
import type { WireChange } from '../../../server/replication/append-wire.ts'
import { changeFromRepl, changeToRepl } from '../../../server/replication/change-codec.ts'
import { ChangeLog } from '../../../server/replication/change-log.ts'
import type { Change } from '../../../vfs/replica/change.ts'
import { repl_append_args } from '../../../xdr/generated/replication.ts'
import { XdrEncodeError } from '../../../xdr/runtime/errors.ts'
import { XdrReader } from '../../../xdr/runtime/reader.ts'
import { XdrWriter } from '../../../xdr/runtime/writer.ts'
import type { Codec } from '../../../xdr/runtime/codec.ts'
import { prng } from '../../helpers/prng.ts'
import { randomChanges } from './random-change.ts'

const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 100000)
t.comment(`seed ${String(seed)} (TSNFS_SEED to repeat)`)

function encode<T>(codec: Codec<T>, v: T): Buffer {
  const w = new XdrWriter(64)
  codec.encode(w, v)
  return Buffer.concat(w.finish())
}

const ref = { id: 77n, gen: 3 }
const times = [{ ref, atime: { sec: 1, nsec: 2 }, mtime: { sec: 3, nsec: 4 } }]
/** WRITEs logged without data, lengths around the padding and the writer's by-reference size (512). */
const fixedWrites: Change[] = [1, 3, 4, 511, 512, 513, 4096].map((length, i) => ({ op: 'write', ref, offset: BigInt(i * 8192), length, data: null, times }))
/** A WRITE logged with its data: shipped as logged, nothing spliced. */
const loggedWithData: Change = { op: 'write', ref, offset: 5n, length: 6, data: Buffer.from('abcdef'), times: [] }

t.test('an APPEND from the logged bytes equals the generated encoding and decodes to the same changes', async (t) => {
  const dir = join(t.testdir(), 'log')
  const next = randomChanges(seed, false)
  const bytes = prng(seed ^ 0x5a5a)
  const changes: Change[] = [...fixedWrites, loggedWithData]
  for (let i = 0; i < 300; i++) changes.push(next())
  const log = await ChangeLog.open({ exportId: 9, dir, memoryBytes: 0 })
  for (const c of changes) log.append(c)
  await log.durable(log.lastSeq())

  // The data each logged-without-data WRITE gets on the wire.
  const dataOf = changes.map((c) => (c.op === 'write' && c.data === null ? Buffer.from(Array.from({ length: c.length }, () => Math.floor(bytes() * 256))) : null))
  const expected = changes.map((c, i) => (c.op === 'write' && c.data === null ? { ...c, data: dataOf[i] ?? null } : c))

  const check = async (l: ChangeLog, where: string): Promise<void> => {
    const read = await l.read(1n, changes.length, 1e9)
    t.equal(read.length, changes.length, `${where}: every change read`)
    t.ok(read.every((r) => r.xdr !== undefined), `${where}: every record gives its XDR`)
    const wire: WireChange[] = read.map((r, i) => ({ xdr: r.xdr ?? Buffer.alloc(0), data: dataOf[i] ?? null }))
    const args = { epoch: 4n, export_id: 9, first: 1n }
    const ours = encode(wireAppendArgs, { ...args, changes: wire })
    const generated = encode(repl_append_args, { ...args, changes: expected.map(changeToRepl) })
    t.ok(ours.equals(generated), `${where}: the same bytes as repl_append_args (${String(ours.length)} against ${String(generated.length)})`)
    const back = repl_append_args.decode(new XdrReader(ours))
    t.equal(back.first, 1n)
    t.strictSame(back.changes.map(changeFromRepl), expected, `${where}: the standby decodes the same changes, data in place`)
  }
  // memoryBytes 0: once written, records are read from the segment file; the first read below
  // may still find some in memory, so read again after a reopen as well.
  await check(log, 'as written')
  await log.close()
  const again = await ChangeLog.open({ exportId: 9, dir })
  t.teardown(() => again.close())
  await check(again, 'after reopen (from the segment)')
})

t.test('data only for a WRITE logged without data, and exactly its length', async (t) => {
  const dir = join(t.testdir(), 'log')
  const log = await ChangeLog.open({ exportId: 9, dir })
  t.teardown(() => log.close())
  const mk: Change = { op: 'mkdir', obj: { dir: ref, name: Buffer.from('d'), ref: { id: 78n, gen: 1 }, mode: 0o755, uid: 0, gid: 0 }, times }
  for (const c of [fixedWrites[2] as Change, mk, loggedWithData]) log.append(c)
  const [write, mkdir, withData] = await log.read(1n, 3, 1e9)
  const send = (xdr: Buffer | undefined, data: Buffer | null) => () => encode(wireAppendArgs, { epoch: 1n, export_id: 9, first: 1n, changes: [{ xdr: xdr ?? Buffer.alloc(0), data }] })
  t.throws(send(mkdir?.xdr, Buffer.alloc(4)), XdrEncodeError, 'data for a MKDIR')
  t.throws(send(withData?.xdr, Buffer.alloc(6)), XdrEncodeError, 'data for a WRITE logged with its data')
  t.throws(send(write?.xdr, Buffer.alloc(3)), XdrEncodeError, 'a WRITE of 4 given 3 bytes')
  t.throws(send(write?.xdr, Buffer.alloc(5)), XdrEncodeError, 'a WRITE of 4 given 5 bytes')
  t.throws(send(write?.xdr?.subarray(0, 30), null), XdrEncodeError, 'XDR not a multiple of 4')
  t.doesNotThrow(send(write?.xdr, Buffer.alloc(4)), 'a WRITE of 4 given 4 bytes')
})
