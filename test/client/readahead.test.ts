import t from 'tap'
import { BlockPrefetch, ReadAhead } from '../../client/readahead.ts'
import { startServer } from '../helpers/server.ts'
import { KIB, MIB, extra, mountFiles, random } from './file-helpers.ts'

const BS = 64 * KIB

t.test('window: starts at 2 blocks, doubles per new block up to the limit, resets on a random read', async t => {
  const ra = new ReadAhead(16)
  const plans = []
  for (let b = 0; b < 6; b++) plans.push(ra.onRead(b * 100, (b + 1) * 100, 100))
  t.strictSame(plans.map(p => p && p.to - p.from), [2, 4, 8, 16, 16, 16])
  t.strictSame(plans[5], { from: 6, to: 22 })
  t.strictSame(ra.onRead(600, 650, 100), { from: 7, to: 23 }, 'same block: the window stays')
  t.equal(ra.onRead(5000, 5100, 100), null, 'a jump is not sequential')
  t.equal(ra.windowBlocks, 0)
  t.strictSame(ra.onRead(5100, 5200, 100), { from: 52, to: 54 }, 'sequential again: ramps from 2')
  t.equal(new ReadAhead(0).onRead(0, 100, 100), null, 'readahead 0 disables it')
  t.strictSame(new ReadAhead(16).onRead(0, 500, 100), { from: 5, to: 15 }, 'a 5-block read opens a 10-block window')
  t.strictSame(new ReadAhead(16).onRead(0, 5000, 100), { from: 50, to: 66 }, 'capped at the limit')
})

t.test('BlockPrefetch: blocks in order; the window opens only while the consumer has to wait', async t => {
  const asked: number[] = []
  const pending = new Map<number, (b: Buffer) => void>()
  const source = {
    readBlock: (i: number): Promise<Buffer> => {
      asked.push(i)
      return new Promise(resolve => pending.set(i, resolve))
    },
  }
  const answerAll = async (): Promise<void> => {
    for (const [i, resolve] of [...pending]) {
      resolve(Buffer.from([i]))
      pending.delete(i)
    }
    await new Promise(resolve => setImmediate(resolve))
  }
  const p = new BlockPrefetch(source, 3, 40, 8)
  const first = p.take()
  t.strictSame(asked, [3, 4, 5], 'the first block and two ahead of it')
  await answerAll()
  t.strictSame(await first, Buffer.from([3]))
  t.strictSame(await p.take(), Buffer.from([4]), 'ready when taken: no growth')
  t.equal(p.windowBlocks, 2)
  t.strictSame(asked, [3, 4, 5, 6])
  await answerAll()
  // The consumer is the slow side: every block is there before it is taken; the window stays at 2.
  for (let i = 5; i < 12; i++) {
    t.strictSame(await p.take(), Buffer.from([i]))
    await answerAll()
  }
  t.equal(p.windowBlocks, 2, 'no wait, no growth')
  t.strictSame(asked, Array.from({ length: 11 }, (_, k) => k + 3), 'two ahead, never more')
  // Now the consumer comes back before the READs answer: each wait doubles the window, up to 8.
  const waits = [p.take(), p.take(), p.take(), p.take()].map(w => w ?? Promise.reject(new Error("no block")))
  t.equal(p.windowBlocks, 8, '2 → 4 → 8, capped')
  t.equal(Math.max(...asked), 12 + 3 + 8, 'asked as far as the window reaches')
  await answerAll()
  t.strictSame(await Promise.all(waits), [12, 13, 14, 15].map(i => Buffer.from([i])), 'in order')
  p.stop()
  t.equal(p.take(), null, 'stopped')
  const short = new BlockPrefetch(source, 0, 1, 8)
  const only = short.take()
  await answerAll()
  t.strictSame(await only, Buffer.from([0]))
  t.equal(short.take(), null, 'past the end')
})

t.test('readFile of a 64 MiB file (8-block reads): read-ahead keeps ahead of the request', async t => {
  const fx = await startServer(t)
  const c = await mountFiles(t, fx, { rsize: BS, wsize: BS })
  const data = random(64 * MIB)
  await c.writeFile('big', data)
  const other = await mountFiles(t, fx, { rsize: BS, wsize: BS })
  t.ok((await other.readFile('big')).equals(data))
  const blocks = (64 * MIB) / BS
  t.equal(other.stats().nfs.READ, blocks)
  t.equal(extra(other, 'read', 'waits'), 8, 'only the first request waited on its own READs')
  t.equal(extra(other, 'readahead', 'issued'), blocks - 8)
})

t.test('a sequential read of a 64 MiB file is served mostly by read-ahead', async t => {
  const fx = await startServer(t)
  const w = await mountFiles(t, fx)
  const data = random(64 * MIB)
  await w.writeFile('big', data)
  const c = await mountFiles(t, fx, { rsize: BS, wsize: BS })
  const parts: Buffer[] = []
  for await (const chunk of c.createReadStream('big', { highWaterMark: 32 * KIB })) parts.push(chunk as Buffer)
  t.ok(Buffer.concat(parts).equals(data), 'the stream returned the file')
  const blocks = (64 * MIB) / BS
  const s = c.stats()
  t.equal(s.nfs.READ, blocks, 'one READ per block, none twice')
  const waits = extra(c, 'read', 'waits')
  t.ok(waits < blocks / 10, `reads that had to ask the server themselves: ${waits} of ${blocks} blocks`)
  t.equal(extra(c, 'readahead', 'issued'), blocks - waits, 'every other block came from read-ahead')
  t.equal(extra(c, 'readahead', 'hits'), blocks - waits, 'and was used')
  t.comment(`read-ahead blocks still in flight when read: ${extra(c, 'read', 'raWaits')}`)
})

t.test('random reads issue no read-ahead', async t => {
  const fx = await startServer(t)
  const c = await mountFiles(t, fx, { rsize: BS, wsize: BS })
  const data = random(64 * BS)
  await c.writeFile('r', data)
  const other = await mountFiles(t, fx, { rsize: BS, wsize: BS })
  const f = await other.open('r')
  const offsets = [37, 5, 60, 12, 44, 2, 51, 20, 33, 9].map(b => b * BS + 100)
  for (const off of offsets) t.ok((await f.read(1000, off)).equals(data.subarray(off, off + 1000)))
  await f.close()
  t.equal(extra(other, 'readahead', 'issued'), 0)
  t.equal(other.stats().nfs.READ, offsets.length, 'one READ per block touched')
  t.equal(extra(other, 'read', 'waits'), offsets.length)
})
