/*
 * The client's memory (issue 11 §6): clean cached blocks are dropped once the
 * client has made no call for idleTrimMs, dirty data never is, and cached
 * handles own their bytes (a slice of Node's shared pool would keep the
 * whole 8 KiB slab alive).
 */
import t from 'tap'
import { NfsClient } from '../../client/index.ts'
import { ownCopy } from '../../client/cache/own-copy.ts'
import { AttrCache } from '../../client/cache/attr-cache.ts'
import { NameCache } from '../../client/cache/name-cache.ts'
import { resolveOptions } from '../../client/options.ts'
import { startServer } from '../helpers/server.ts'
import { KIB, mountFiles, random } from './file-helpers.ts'

const BS = 64 * KIB

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

t.test('an own copy has a buffer of its own, the same bytes', async (t) => {
  const pooled = Buffer.from('0123456789abcdef0123456789abcdef')
  t.ok(pooled.buffer.byteLength > pooled.length, 'Buffer.from of 32 bytes is a slice of a shared slab')
  const c = ownCopy(pooled)
  t.ok(c.equals(pooled))
  t.equal(c.buffer.byteLength, 32, 'the copy keeps only its own 32 bytes alive')
  t.not(c.buffer, pooled.buffer)
})

t.test('idle trim defaults, and 0 turns it off', async (t) => {
  t.strictSame(resolveOptions({}).idle, { ms: 30_000, gc: false })
  t.strictSame(resolveOptions({ idleTrimMs: 0, idleGc: true }).idle, { ms: 0, gc: true })
})

t.test('an idle client drops its clean blocks, never its dirty data', async (t) => {
  const fx = await startServer(t)
  const data = random(6 * BS + 5)
  const writer = await mountFiles(t, fx, { rsize: BS, wsize: BS, idleTrimMs: 0 })
  await writer.writeFile('clean', data)
  const c = await mountFiles(t, fx, { rsize: BS, wsize: BS, idleTrimMs: 300 }, { readahead: 0, writebackDelayMs: 600_000 })
  t.ok((await c.readFile('clean')).equals(data))
  t.equal(c.files.blocks.bytes, data.length, 'the file is cached')
  // Dirty data written now stays dirty: no write-back timer fires, and nothing below forces one.
  const f = await c.open('dirty', 'w')
  const dirty = random(2 * BS + 100)
  await f.write(dirty, 0)
  await until(() => c.files.blocks.bytes === 0, 10_000, 'clean blocks dropped')
  t.equal(c.files.blocks.blocksOf(c.files.keyOf((await c.resolve('clean')).fh)), 0)
  t.equal(c.files.writeback.held, dirty.length, 'the dirty bytes are still held')
  await f.close()
  t.ok((await writer.readFile('dirty')).equals(dirty), 'and reach the server at close')
  t.ok((await c.readFile('clean')).equals(data), 'dropped blocks are read again')
})

t.test('cached handles own their memory', async (t) => {
  const fx = await startServer(t)
  const c = await NfsClient.mount(fx.url('/export'), { uid: 0, gid: 0, idleTrimMs: 0 })
  t.teardown(() => c.umount())
  await c.mkdir('/d')
  await c.writeFile('/d/f', Buffer.from('x'))
  await c.stat('/d/f')
  const dir = (await c.resolve('/d')).fh
  const fh = c.names.peek(dir, 'f')
  t.ok(fh !== undefined && fh.length > 0, 'the name is cached')
  t.equal(fh?.buffer.byteLength, fh?.length, 'the name cache keeps a handle of its own')
})

t.test('the lookup cache is bounded in names over all directories: least recently used directories go', async (t) => {
  const attrs = new AttrCache({ acregminMs: 3000, acregmaxMs: 60_000, acdirminMs: 30_000, acdirmaxMs: 60_000, noac: false, maxEntries: 100 })
  const counters = { hits: 0, misses: 0, negativeHits: 0, dirDrops: 0 }
  const n = new NameCache(attrs, { mode: 'all', maxDirs: 100, maxNamesPerDir: 100, maxNames: 10 }, counters)
  const dir = (i: number): Buffer => Buffer.from([0xd0, i])
  const child = Buffer.from([0xf0])
  for (let d = 0; d < 3; d++) for (let i = 0; i < 4; i++) n.addPositive(dir(d), `n${i}`, child)
  t.equal(n.size, 8, 'the third directory pushed the first (least recently used) out: 4 + 4 names')
  t.equal(n.peek(dir(0), 'n0'), undefined)
  t.ok(n.peek(dir(2), 'n3')?.equals(child))
  n.addPositive(dir(1), 'n0', child)
  t.equal(n.size, 8, 'replacing a name does not count twice')
  n.remove(dir(1), 'n0')
  n.addNegative(dir(1), 'gone')
  t.equal(n.size, 8)
  n.dropDir(dir(2))
  t.equal(n.size, 4, 'a dropped directory takes its names along')
  for (let i = 0; i < 30; i++) n.addPositive(dir(1), `m${i}`, child)
  t.equal(n.size, 34, 'one directory alone may hold more than maxNames (up to maxNamesPerDir): only other directories are dropped')
  t.equal(n.peek(dir(2), 'n3'), undefined)
  n.clear()
  t.equal(n.size, 0)
  t.strictSame(resolveOptions({}).nameCache, { mode: 'all', maxDirs: 4096, maxNamesPerDir: 16_384, maxNames: 262_144 })
})
