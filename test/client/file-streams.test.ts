import t from 'tap'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createHash } from 'node:crypto'
import { startServer } from '../helpers/server.ts'
import { KIB, MIB, extra, mountFiles, random } from './file-helpers.ts'

const BS = 64 * KIB

t.test('a 32 MiB Readable through createWriteStream and back through createReadStream', async t => {
  const fx = await startServer(t)
  const c = await mountFiles(t, fx, { rsize: BS, wsize: BS })
  const data = random(32 * MIB)
  // Uneven chunks, as a network source would give them.
  const chunks: Buffer[] = []
  for (let off = 0, n = 1000; off < data.length; off += n, n = (n * 7) % 90_001 + 1) chunks.push(data.subarray(off, off + n))
  const ws = c.createWriteStream('streamed')
  let atFinish: { commits: number; held: number } | null = null
  ws.on('finish', () => {
    atFinish = { commits: c.stats().nfs.COMMIT ?? 0, held: extra(c, 'writeback', 'dirtyBytes') }
  })
  await pipeline(Readable.from(chunks), ws)
  // COMMITs go out behind the writes past 8 MiB held (an eighth of the dirty limit), and one at close.
  const commits = c.stats().nfs.COMMIT ?? 0
  t.ok(commits >= 1, `COMMITs: ${String(commits)}`)
  t.strictSame(atFinish, { commits, held: 0 }, "'finish' came after the last COMMIT, with nothing held")
  const other = await mountFiles(t, fx, { rsize: BS, wsize: BS })
  const hash = createHash('sha256')
  await pipeline(other.createReadStream('streamed'), hash)
  t.equal(hash.digest('hex'), createHash('sha256').update(data).digest('hex'), 'byte-exact')
  const part: Buffer[] = []
  for await (const b of other.createReadStream('streamed', { start: 1000, end: 1999, highWaterMark: 300 })) part.push(b as Buffer)
  t.ok(Buffer.concat(part).equals(data.subarray(1000, 2000)), 'start and end (inclusive)')
})

t.test('stream errors: a missing file, an exclusive create of an existing one, append', async t => {
  const fx = await startServer(t)
  const c = await mountFiles(t, fx)
  await t.rejects(pipeline(c.createReadStream('missing'), async function* (src: AsyncIterable<Buffer>) {
    for await (const b of src) yield b
  }), { code: 'NFS3ERR_NOENT', errno: 'ENOENT' })
  await c.writeFile('x', Buffer.from('abc'))
  await t.rejects(pipeline(Readable.from([Buffer.from('z')]), c.createWriteStream('x', { flags: 'wx' })), { code: 'NFS3ERR_EXIST' })
  await pipeline(Readable.from([Buffer.from('def')]), c.createWriteStream('x', { flags: 'a' }))
  t.equal((await c.readFile('x')).toString(), 'abcdef')
})

t.test('readBlock: whole blocks in buffers of their own, given back to the pool and lent again; holes and the local size', async t => {
  const fx = await startServer(t)
  const writer = await mountFiles(t, fx, { rsize: MIB, wsize: MIB })
  const data = random(5 * MIB + 777)
  await writer.writeFile('blocks', data)
  const c = await mountFiles(t, fx, { rsize: MIB, wsize: MIB })
  const f = await c.open('blocks', 'r+')
  t.equal(f.blockSize, MIB)
  const got: Buffer[] = []
  for (let i = 0; ; i++) {
    const b = await f.readBlock(i)
    if (b.length === 0) break
    got.push(Buffer.from(b))
    f.release(b)
  }
  t.ok(Buffer.concat(got).equals(data), 'byte-exact, the last block short')
  t.ok(c.buffers.reused >= 4, `READ records came from the pool again (${String(c.buffers.reused)} reuses of ${String(c.buffers.allocated)} slabs)`)
  t.equal(c.files.blocks.blocksOf(c.files.keyOf(f.fh)), 0, 'nothing cached')
  // Written past the end and not yet sent: the block shows it, with the hole between as zeros.
  await f.write(Buffer.from('tail'), 7 * MIB)
  const last = await f.readBlock(7)
  t.equal(last.length, 4)
  t.equal(last.toString(), 'tail')
  const hole = await f.readBlock(6)
  t.ok(hole.equals(Buffer.alloc(MIB)), 'the hole reads as zeros')
  t.equal((await f.readBlock(8)).length, 0, 'past the local size: empty')
  await f.close()
})
