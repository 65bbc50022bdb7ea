/*
 * The DATA side of direct access restore (server/ndmp/data/direct-access.ts) over a real backup
 * stream of the backup format: a mover stand-in serves each NOTIFY_DATA_READ from the stream bytes
 * (refusing a second read while one is unfinished, as our mover does); the members chosen by
 * their file-history offsets restore exactly, the bytes asked for are theirs only, and an offset
 * that holds no header is a BackupFormatError naming it.
 */
import t from 'tap'
import { createBackupFormat } from '../../../backup/index.ts'
import type { ByteSource, FileHistoryEntry } from '../../../backup/types.ts'
import { BackupFormatError } from '../../../backup/types.ts'
import { DirectAccessSource, LENGTH_INFINITY } from '../../../server/ndmp/data/direct-access.ts'
import { MemoryVfs } from '../../../vfs/memory/memory-vfs.ts'
import { memorySink, mkdirp, resolve, snapshotTree, writeFile } from '../../backup/helpers.ts'

/** Serves stream ranges as a mover does: nothing until asked, one range at a time. */
class RangeMover implements ByteSource {
  readonly stream: Buffer
  pos = 0
  left = 0
  asked: Array<[bigint, bigint]> = []
  constructor(stream: Buffer) {
    this.stream = stream
  }

  dataRead(offset: bigint, length: bigint): void {
    if (this.left > 0) throw new Error('READ_IN_PROGRESS: a read is unfinished')
    this.asked.push([offset, length])
    this.pos = Number(offset)
    this.left = length === LENGTH_INFINITY ? this.stream.length - this.pos : Math.min(Number(length), this.stream.length - this.pos)
  }

  read(max: number): Promise<Buffer | null> {
    if (this.left === 0) return Promise.reject(new Error('read with nothing asked'))
    const n = Math.min(max, this.left, 7000)
    const b = this.stream.subarray(this.pos, this.pos + n)
    this.pos += n
    this.left -= n
    return Promise.resolve(b)
  }
}

t.test('direct access over a real stream', async (t) => {
  const src = new MemoryVfs()
  await mkdirp(src, 'a/deep')
  await writeFile(src, 'big.bin', Buffer.alloc(3 * 1024 * 1024, 5))
  await writeFile(src, 'a/one.txt', 'one\n')
  await writeFile(src, 'a/deep/two.txt', 'two\n')
  await writeFile(src, `a/${'x'.repeat(150)}.txt`, 'a long name\n')
  await writeFile(src, 'z.txt', 'last\n')
  const format = createBackupFormat()
  const sink = memorySink()
  const history: FileHistoryEntry[] = []
  await format.writeBackup({ vfs: src, root: src.root(), live: true, name: 'src' }, sink, { level: 0, base: null, onFile: (e) => history.push(e) })
  const stream = sink.bytes()
  const at = (p: string): bigint => history.find((e) => e.path === p)?.offset ?? -1n

  const restore = async (paths: string[]): Promise<{ tree: Record<string, unknown>; mover: RangeMover; dar: DirectAccessSource }> => {
    const mover = new RangeMover(stream)
    const dar = new DirectAccessSource(mover, mover, paths.map((p) => ({ offset: at(p) })), 'test stream')
    const dst = new MemoryVfs()
    await format.readBackup(dar, 'test stream', { kind: 'vfs', vfs: dst, root: dst.root(), owner: { uid: 0, gid: 0 } }, { select: paths.map((p) => ({ path: p })), overwrite: false, applyDeletions: false })
    return { tree: await snapshotTree(dst), mover, dar }
  }

  const files = await restore(['z.txt', 'a/one.txt', `a/${'x'.repeat(150)}.txt`])
  t.same(Object.keys(files.tree).filter((p) => !p.endsWith('a')).sort(), [`a/${'x'.repeat(150)}.txt`, 'a/one.txt', 'z.txt'].sort())
  t.ok(files.dar.stats.bytes < 16n * 1024n, `three small members: ${files.dar.stats.bytes} of ${stream.length} stream bytes`)
  t.same(files.mover.asked.map(([o]) => o).slice(0, 1), [at('a/one.txt') < at('z.txt') ? at('a/one.txt') : at('z.txt')], 'in offset order')

  const dir = await restore(['a'])
  t.same(Object.keys(dir.tree).sort(), ['a', 'a/deep', 'a/deep/two.txt', 'a/one.txt', `a/${'x'.repeat(150)}.txt`], 'a directory brings its subtree')
  t.ok(dir.dar.stats.bytes < 64n * 1024n, `and not the rest: ${dir.dar.stats.bytes} bytes`)

  const big = await restore(['big.bin'])
  t.equal((big.tree['big.bin'] as { size: string }).size, String(3 * 1024 * 1024), 'a large member whole')

  const mover = new RangeMover(stream)
  const bad = new DirectAccessSource(mover, mover, [{ offset: at('z.txt') + 512n }], 'test stream')
  const dst = new MemoryVfs()
  let caught: unknown = null
  try {
    await format.readBackup(bad, 'test stream', { kind: 'vfs', vfs: dst, root: dst.root(), owner: { uid: 0, gid: 0 } }, { select: [{ path: 'z.txt' }], overwrite: false, applyDeletions: false })
  } catch (err) {
    caught = err
  }
  t.ok(caught instanceof BackupFormatError, 'a BackupFormatError')
  t.match((caught as Error).message, /direct access: no tar header at offset \d+/)
  await t.rejects(resolve(dst, 'z.txt'), { code: 'ENOENT' })
})
