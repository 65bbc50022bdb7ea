/*
 * Direct access restore in whole records (server/ndmp/data/range-input.ts RecordRanges) over a
 * real backup stream, against a stand-in for the NDMP SDK's mover (ndmjob -o daemon): it serves a
 * read only when it starts on a record boundary and is whole records long (ndma_tape.c
 * ndmta_write_quantum waits for ever otherwise; here that is an error, so a bad read fails the
 * test at once), one read at a time, from a stream padded with zeros to whole records as that
 * mover writes it. Also a mover that does not pad (ours over TCP): a widened read past the
 * stream's end gets what there is, then the connection ends.
 */
import t from 'tap'
import { createBackupFormat } from '../../../backup/index.ts'
import type { ByteSource, FileHistoryEntry } from '../../../backup/types.ts'
import { DirectAccessSource } from '../../../server/ndmp/data/direct-access.ts'
import { MemoryVfs } from '../../../vfs/memory/memory-vfs.ts'
import { memorySink, mkdirp, snapshotTree, writeFile } from '../../backup/helpers.ts'

const RECORD = 10240

/** Serves whole records from record boundaries, one read at a time; `padded`: the stream's last record is filled with zeros. */
class RecordMover implements ByteSource {
  readonly stream: Buffer
  pos = 0
  left = 0
  asked: Array<[bigint, bigint]> = []
  constructor(stream: Buffer, padded: boolean) {
    const whole = Math.ceil(stream.length / RECORD) * RECORD
    this.stream = padded ? Buffer.concat([stream, Buffer.alloc(whole - stream.length)]) : stream
  }

  dataRead(offset: bigint, length: bigint): void {
    if (this.left > 0) throw new Error(`READ_IN_PROGRESS: ${this.left} bytes of the last read unsent`)
    if (offset % BigInt(RECORD) !== 0n || length % BigInt(RECORD) !== 0n || length === 0n) throw new Error(`MOVER_READ(${offset}, ${length}) is not whole records: the SDK's mover would wait for ever`)
    this.asked.push([offset, length])
    this.pos = Number(offset)
    this.left = Math.min(Number(length), this.stream.length - this.pos)
  }

  read(max: number): Promise<Buffer | null> {
    // Past the end of an unpadded stream: our mover pauses EOF, the DMA closes it, the connection ends.
    if (this.left === 0) return this.pos >= this.stream.length ? Promise.resolve(null) : Promise.reject(new Error('read with nothing asked'))
    const n = Math.min(max, this.left, 7000)
    const b = this.stream.subarray(this.pos, this.pos + n)
    this.pos += n
    this.left -= n
    return Promise.resolve(b)
  }
}

t.test('direct access in whole records over a real stream', async (t) => {
  const src = new MemoryVfs()
  await mkdirp(src, 'a/deep')
  await writeFile(src, 'big.bin', Buffer.alloc(3 * 1024 * 1024, 5))
  await writeFile(src, 'a/one.txt', 'one\n')
  await writeFile(src, 'a/deep/two.txt', 'two\n')
  await writeFile(src, `a/${'x'.repeat(150)}.txt`, 'a long name\n')
  await writeFile(src, 'mid.bin', Buffer.alloc(25_000, 9))
  await writeFile(src, 'z.txt', 'last\n')
  const format = createBackupFormat()
  const sink = memorySink()
  const history: FileHistoryEntry[] = []
  await format.writeBackup({ vfs: src, root: src.root(), live: true, name: 'src' }, sink, { level: 0, base: null, onFile: (e) => history.push(e) })
  const stream = sink.bytes()
  const want = await snapshotTree(src)
  const at = (p: string): bigint => history.find((e) => e.path === p)?.offset ?? -1n
  t.not(stream.length % RECORD, 0, 'the stream does not end on a record (the unpadded case means something)')

  const restore = async (paths: string[], padded = true): Promise<{ tree: Record<string, unknown>; mover: RecordMover; dar: DirectAccessSource }> => {
    const mover = new RecordMover(stream, padded)
    const dar = new DirectAccessSource(mover, mover, paths.map((p) => ({ offset: at(p) })), 'test stream', RECORD)
    const dst = new MemoryVfs()
    await format.readBackup(dar, 'test stream', { kind: 'vfs', vfs: dst, root: dst.root(), owner: { uid: 0, gid: 0 } }, { select: paths.map((p) => ({ path: p })), overwrite: false, applyDeletions: false })
    return { tree: await snapshotTree(dst), mover, dar }
  }
  const same = (tree: Record<string, unknown>, paths: string[]): void => {
    for (const p of paths) t.same(tree[p], want[p], `${p} as backed up`)
  }

  const files = await restore(['z.txt', 'a/one.txt', `a/${'x'.repeat(150)}.txt`, 'mid.bin'])
  t.same(Object.keys(files.tree).filter((p) => p !== 'a').sort(), [`a/${'x'.repeat(150)}.txt`, 'a/one.txt', 'mid.bin', 'z.txt'].sort())
  same(files.tree, ['z.txt', 'a/one.txt', `a/${'x'.repeat(150)}.txt`, 'mid.bin'])
  t.ok(files.dar.stats.bytes < 8n * BigInt(RECORD), `four members: ${files.dar.stats.bytes} of ${stream.length} stream bytes`)
  t.equal(files.dar.stats.requests, files.mover.asked.length, 'the reads counted are the reads asked')
  const asked = files.mover.asked.map(([o]) => o)
  t.same(asked, [...asked].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)), 'forward only')

  const one = await restore(['a/one.txt'])
  same(one.tree, ['a/one.txt'])
  t.ok(one.mover.asked.length <= 2, `a small member's header and body: one read, two if they straddle a record (${one.mover.asked.length})`)

  const dir = await restore(['a'])
  t.same(Object.keys(dir.tree).sort(), ['a', 'a/deep', 'a/deep/two.txt', 'a/one.txt', `a/${'x'.repeat(150)}.txt`], 'a directory brings its subtree')
  same(dir.tree, ['a/deep/two.txt', 'a/one.txt', `a/${'x'.repeat(150)}.txt`])
  t.ok(dir.dar.stats.bytes < 8n * BigInt(RECORD), `and not the rest: ${dir.dar.stats.bytes} bytes`)

  const big = await restore(['big.bin', 'z.txt'])
  same(big.tree, ['big.bin', 'z.txt'])

  // The last member from a mover that does not pad: the widened read runs past the stream's end.
  const last = await restore(['z.txt'], false)
  same(last.tree, ['z.txt'])
  const end = await restore(['mid.bin', 'a/deep/two.txt', 'z.txt'], false)
  same(end.tree, ['mid.bin', 'a/deep/two.txt', 'z.txt'])
})
