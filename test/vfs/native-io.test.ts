/*
 * The native I/O helper (vfs/native/io.c): its CRC-32C must equal the JavaScript
 * one on every length, alignment and seed, and its page-cache-only read must give the file's bytes
 * when cached and -EAGAIN (never a wait) when not; ImageFile reads the same bytes either way.
 */
import t from 'tap'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { ImageFile } from '../../vfs/engine/blockdev/image-file.ts'
import { crc32cTable, crc32cUpdate } from '../../vfs/engine/crc32c.ts'
import { nativeIo, whyNoNativeIo } from '../../vfs/native-io.ts'
import { rng } from './engine/engine-helpers.ts'
import { scratch } from './engine/format-helpers.ts'

const addon = nativeIo()

/** Drop the file's pages from the page cache: written back first, then GNU dd's nocache (posix_fadvise DONTNEED). */
function dropCache(file: string): void {
  const fd = fs.openSync(file, 'r+')
  fs.fsyncSync(fd)
  fs.closeSync(fd)
  execFileSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none'])
}

t.test('the addon is built and loads (npm ci runs node-gyp)', async (t) => {
  t.equal(whyNoNativeIo(), null)
  t.equal(typeof addon?.readNoWait, 'function')
})

t.test('native CRC-32C equals the table-driven one (lengths 0-9000, every alignment, random seeds)', async (t) => {
  // x86-64 has had SSE4.2 since 2008; elsewhere the addon offers no CRC and crc32cUpdate is the table.
  const crc = addon?.crc32c ?? ((c: number, b: Uint8Array, s: number, e: number) => crc32cTable(c, b.subarray(s, e)))
  t.equal(addon?.crc32c === undefined, process.arch !== 'x64', 'the native CRC is there on x86-64')
  const seed = Number(process.env.CRC_SEED ?? Math.floor(Math.random() * 2 ** 31))
  t.comment(`seed ${seed}`)
  const r = rng(seed)
  const big = Buffer.from(Array.from({ length: 9100 }, () => Math.floor(r() * 256)))
  let bad = ''
  for (let i = 0; i < 3000 && bad === ''; i++) {
    const start = Math.floor(r() * 64)
    const len = i < 300 ? i : Math.floor(r() * 9000)
    const from = Math.floor(r() * 2 ** 32)
    const view = big.subarray(start, start + len)
    const want = crc32cTable(from, view)
    if (crc(from, big, start, start + len) !== want) bad = `native at ${start}+${len} from ${from}`
    else if (crc32cUpdate(from, view) !== want) bad = `crc32cUpdate at ${start}+${len} from ${from}`
  }
  t.equal(bad, '', 'no mismatch')
  if (addon?.crc32c !== undefined) {
    t.throws(() => crc(0, big, 10, 9101), TypeError, 'a range past the buffer is refused')
    t.throws(() => crc(0, big, 20, 10), TypeError, 'an end before the start is refused')
  }
})

t.test('readNoWait: cached bytes at once, -EAGAIN for pages not in the cache, TypeError for a range outside the buffer', async (t) => {
  if (addon === null) return t.fail(`no addon: ${whyNoNativeIo()}`)
  const file = path.join(scratch(t, 'nowait'), 'f')
  const data = Buffer.from(Array.from({ length: 1 << 20 }, (_, i) => (i * 31 + 7) & 0xff))
  fs.writeFileSync(file, data)
  const fd = fs.openSync(file, 'r')
  t.teardown(() => {
    fs.closeSync(fd)
  })
  const out = Buffer.alloc(8192)
  t.equal(addon.readNoWait(fd, out, 100, 4096, 12288), 4096, 'a cached block reads whole')
  t.ok(out.subarray(100, 4196).equals(data.subarray(12288, 16384)), 'into the offset asked, from the position asked')
  t.equal(addon.readNoWait(fd, out, 0, 4096, data.length), 0, 'at the end of the file: 0 bytes')
  t.throws(() => addon.readNoWait(fd, out, 8000, 4096, 0), TypeError)
  t.equal(addon.readNoWait(999_999, out, 0, 10, 0), -9, 'a bad descriptor: -EBADF')
  dropCache(file)
  const cold = addon.readNoWait(fd, out, 0, 4096, 512 * 1024)
  t.equal(cold, -addon.EAGAIN, 'a page not in the cache: -EAGAIN, no wait')
})

t.test('ImageFile reads the same bytes from cached and dropped pages', async (t) => {
  const file = path.join(scratch(t, 'nowait-img'), 'img')
  const data = Buffer.from(Array.from({ length: 1 << 20 }, (_, i) => (i * 13 + 1) & 0xff))
  fs.writeFileSync(file, data)
  const dev = await ImageFile.open(file, { readOnly: true })
  t.teardown(() => dev.close())
  t.ok((await dev.read(4096, 65536)).equals(data.subarray(4096, 69632)), 'cached')
  dropCache(file)
  if (addon !== null) {
    // The page cache belongs to the file, not the descriptor: another one tells what is cached.
    const fd = fs.openSync(file, 'r')
    t.equal(addon.readNoWait(fd, Buffer.alloc(1), 0, 1, 300000), -addon.EAGAIN, 'the pages are gone: the asynchronous path reads them')
    fs.closeSync(fd)
  }
  t.ok((await dev.read(8192, 300000)).equals(data.subarray(8192, 308192)), 'after the pages were dropped')
  const part = Buffer.alloc(4096)
  await dev.readInto(1 << 19, part)
  t.ok(part.equals(data.subarray(1 << 19, (1 << 19) + 4096)), 'readInto')
})

t.test('LocalVfs reads the same small blocks from cached and dropped pages, and eof past the end', async (t) => {
  const { localDirs, openLocal } = await import('./local-helpers.ts')
  const dirs = localDirs()
  const vfs = openLocal(dirs)
  t.teardown(() => vfs.close())
  const file = path.join(dirs.root, 'f')
  const data = Buffer.from(Array.from({ length: 1 << 20 }, (_, i) => (i * 7 + 3) & 0xff))
  fs.writeFileSync(file, data)
  const { ref } = await vfs.lookup(vfs.root(), Buffer.from('f'))
  const cached = await vfs.read(ref, 8192n, 4096)
  t.ok(cached.data.equals(data.subarray(8192, 12288)), 'cached')
  dropCache(file)
  const cold = await vfs.read(ref, 40960n, 65536)
  t.ok(cold.data.equals(data.subarray(40960, 106496)), 'after the pages were dropped')
  const tail = await vfs.read(ref, BigInt(data.length - 100), 4096)
  t.equal(tail.data.length, 100, 'a read across the end is short')
  t.equal(tail.eof, true)
  const past = await vfs.read(ref, BigInt(data.length + 4096), 4096)
  t.same([past.data.length, past.eof], [0, true], 'past the end: nothing, eof')
})
