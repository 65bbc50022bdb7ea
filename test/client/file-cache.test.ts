import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { startServer } from '../helpers/server.ts'
import { KIB, callsDuring, extra, mountFiles, random } from './file-helpers.ts'

const BS = 64 * KIB

t.test('re-reading a cached file sends no READ (only the GETATTR of open)', async t => {
  const fx = await startServer(t)
  const c = await mountFiles(t, fx, { rsize: BS, wsize: BS })
  const data = random(5 * BS + 17)
  await c.writeFile('f', data)
  const other = await mountFiles(t, fx, { rsize: BS, wsize: BS })
  const first = await callsDuring(other, async () => {
    t.ok((await other.readFile('f')).equals(data))
  })
  t.equal(first.READ, 6)
  t.strictSame(await callsDuring(other, async () => {
    t.ok((await other.readFile('f')).equals(data))
  }), { GETATTR: 1 }, 'close-to-open GETATTR, data from the cache')
  t.ok(extra(other, 'blockCache', 'hits') >= 6)
  // The writer's first open for reading asks ACCESS, whose attributes are the close-to-open check (client/access.ts).
  t.strictSame(await callsDuring(c, async () => {
    t.ok((await c.readFile('f')).equals(data))
  }), { ACCESS: 1 }, 'the writer kept its own data cached')
})

t.test("another client's change drops the blocks: at the next open, or once the attributes expire", async t => {
  const fx = await startServer(t)
  const a = await mountFiles(t, fx, { rsize: BS, wsize: BS, acregmin: 0.3, acregmax: 0.3 })
  const b = await mountFiles(t, fx, { rsize: BS, wsize: BS })
  await b.writeFile('shared', Buffer.from('version one'))
  t.equal((await a.readFile('shared')).toString(), 'version one')

  await b.writeFile('shared', Buffer.from('version two'))
  t.strictSame(await callsDuring(a, async () => {
    t.equal((await a.readFile('shared')).toString(), 'version two')
  }), { GETATTR: 1, READ: 1 }, 'open revalidated, saw the change, read again')

  const f = await a.open('shared')
  t.equal((await f.read(100, 0)).toString(), 'version two')
  await b.writeFile('shared', Buffer.from('version 3!!'))
  t.strictSame(await callsDuring(a, async () => {
    t.equal((await f.read(100, 0)).toString(), 'version two', 'inside the expiry: the cached block')
  }), {})
  await sleep(350)
  t.strictSame(await callsDuring(a, async () => {
    t.equal((await f.read(100, 0)).toString(), 'version 3!!')
  }), { GETATTR: 1, READ: 1 }, 'expired: GETATTR showed the change, blocks dropped')
  await f.close()
  t.ok(extra(a, 'blockCache', 'drops') >= 2)
})

t.test('the block cache is bounded in bytes; evicted blocks are read again', async t => {
  const fx = await startServer(t)
  const c = await mountFiles(t, fx, { rsize: BS, wsize: BS }, { blockCacheBytes: 4 * BS, readahead: 0 })
  const data = random(8 * BS)
  await c.writeFile('e', data)
  const other = await mountFiles(t, fx, { rsize: BS, wsize: BS }, { blockCacheBytes: 4 * BS, readahead: 0 })
  t.ok((await other.readFile('e')).equals(data))
  t.ok(other.files.blocks.bytes <= 4 * BS)
  t.ok(extra(other, 'blockCache', 'evictions') >= 4)
  const again = await callsDuring(other, async () => {
    t.ok((await other.readFile('e')).equals(data))
  })
  t.equal(again.READ, 4, 'the first four were evicted by the last four')
})

t.test('stats: block cache, read-ahead and write-back groups', async t => {
  const fx = await startServer(t)
  const c = await mountFiles(t, fx, { rsize: BS, wsize: BS })
  await c.writeFile('s', random(4 * BS))
  await c.readFile('s')
  const s = c.stats()
  t.match(s.extra, {
    blockCache: { hits: Number },
    writeback: { writes: 4, commits: 1, dirtyBytes: 0 },
  })
})

t.test('data path options given to mount() reach the file layer', async (t) => {
  const { NfsClient } = await import('../../client/index.ts')
  const { startServer } = await import('../helpers/server.ts')
  const s = await startServer(t)
  const c = await NfsClient.mount(s.url('/export'), { readahead: 0, blockCacheBytes: 1 << 20 })
  t.teardown(() => c.umount())
  await c.writeFile('/ra.bin', Buffer.alloc(3 << 20, 1))
  const f = await c.open('/ra.bin')
  for (let i = 0; i < 3; i++) await f.read(1 << 20)
  await f.close()
  t.equal(c.stats().extra.readahead?.issued ?? 0, 0, 'readahead: 0 turns read-ahead off')
})
