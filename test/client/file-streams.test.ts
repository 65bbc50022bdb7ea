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
  let finished = false
  ws.on('finish', () => {
    finished = true
  })
  await pipeline(Readable.from(chunks), ws)
  t.ok(finished)
  t.equal(c.stats().nfs.COMMIT, 1, "'finish' came after the COMMIT")
  t.equal(extra(c, 'writeback', 'dirtyBytes'), 0)
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
