import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { MessageChannel } from 'node:worker_threads'
import { MemoryVfs } from '../../vfs/memory/memory-vfs.ts'
import type { NfsClient } from '../../client/nfs-client.ts'
import type { NfsFile } from '../../client/file.ts'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { startServer } from '../helpers/server.ts'
import { KIB, MIB, callsDuring, extra, mountFiles, random } from './file-helpers.ts'
import { PROC_COMMIT, PROC_WRITE, startVerfProxy } from './file-proxy.ts'

const BS = 64 * KIB

/** Wait until the file's WRITEs are answered (data held only as unstable). */
async function writesSettled(c: NfsClient, f: NfsFile): Promise<void> {
  for (;;) {
    const s = c.files.peekState(f.fh)
    if (s === undefined || (s.inflight.size === 0 && s.dirty.size === 0)) return
    await sleep(5)
  }
}

t.test('an 8 MiB burst of 4 KiB writes: wsize UNSTABLE WRITEs in the background, one COMMIT on close', async t => {
  const fx = await startServer(t)
  for (const wsize of [BS, MIB]) {
    const c = await mountFiles(t, fx, { wsize, rsize: wsize })
    const data = random(8 * MIB)
    const f = await c.open(`burst${wsize}`, 'w')
    const during = await callsDuring(c, async () => {
      for (let off = 0; off < data.length; off += 4 * KIB) await f.write(data.subarray(off, off + 4 * KIB))
    })
    t.equal(during.COMMIT, undefined, 'no COMMIT while writing')
    t.equal(extra(c, 'writeback', 'dirtyBytes') > 0, true, 'data held')
    const closing = await callsDuring(c, () => f.close())
    const calls = c.stats().nfs
    t.equal(calls.WRITE, (8 * MIB) / wsize, `WRITE calls == 8 MiB / wsize (${wsize})`)
    t.equal(calls.COMMIT, 1, 'exactly one COMMIT')
    t.equal(closing.COMMIT, 1, 'sent by close')
    t.equal(extra(c, 'writeback', 'dirtyBytes'), 0, 'nothing held after the COMMIT')
    t.equal(extra(c, 'writeback', 'resends'), 0)
    const other = await mountFiles(t, fx)
    t.ok((await other.readFile(`burst${wsize}`)).equals(data))
  }
})

t.test('write() returns without an RPC; fsync writes and commits', async t => {
  const fx = await startServer(t)
  const c = await mountFiles(t, fx, { wsize: BS, rsize: BS })
  const f = await c.open('lazy', 'w')
  t.strictSame(await callsDuring(c, () => f.write(Buffer.from('small'))), {}, 'a partial block stays dirty')
  t.equal((await f.stat()).size, 5n, 'the local size shows the write')
  // (The memory backend commits at the level asked: no COMMIT after the WRITE means it was FILE_SYNC.)
  t.strictSame(await callsDuring(c, () => f.fsync()), { WRITE: 1 }, 'one dirty range: one FILE_SYNC WRITE, no COMMIT (as Linux)')
  t.strictSame(await callsDuring(c, () => f.fsync()), {}, 'nothing left to flush')
  await f.write(Buffer.from('!'), 5)
  await sleep(700)
  t.equal(c.stats().nfs.WRITE, 2, 'the timer sent the dirty block')
  t.strictSame(await callsDuring(c, () => f.close()), { COMMIT: 1 }, 'an UNSTABLE WRITE already sent: COMMIT')
  const g = await c.open('two', 'w')
  await g.write(Buffer.from('a'), 0)
  await g.write(Buffer.from('b'), 100)
  t.strictSame(await callsDuring(c, () => g.close()), { WRITE: 2, COMMIT: 1 }, 'two ranges: UNSTABLE WRITEs and a COMMIT')
  const other = await mountFiles(t, fx)
  const got = await other.readFile('two')
  t.equal(got.length, 101)
  t.equal(got.toString('latin1', 0, 1) + got.toString('latin1', 100), 'ab')
  t.equal((await other.readFile('lazy')).toString(), 'small!')
})

for (const which of ['COMMIT', 'WRITE'] as const) {
  t.test(`a verifier change (${which} reply) makes the client re-send and commit again; the file ends byte-exact`, async t => {
    const fx = await startServer(t)
    const proxy = await startVerfProxy(t, fx.port)
    const c = await mountFiles(t, fx.url('/export', '', '').replace(`nfsport=${fx.port}&mountport=${fx.port}`, `nfsport=${proxy.port}&mountport=${fx.port}`), { wsize: BS, rsize: BS })
    const other = await mountFiles(t, fx)
    const data = random(16 * BS + 123)
    if (which === 'WRITE') proxy.flip.set(PROC_WRITE, 17)
    const f = await c.open('v', 'w')
    await f.write(data)
    await f.fsync().catch(() => undefined)
    // fsync above already went through the whole cycle for WRITE flips; for COMMIT, check the loss case below.
    if (which === 'COMMIT') {
      await f.write(data, 0)
      await writesSettled(c, f)
      // The server "loses" the unstable data: another client scribbles over it, then the COMMIT reply shows a new verifier.
      const o = await other.open('v', 'r+')
      await o.write(Buffer.alloc(data.length, 0xee), 0)
      await o.close()
      proxy.flip.set(PROC_COMMIT, 1)
    }
    await f.close()
    const writes = proxy.calls.get(PROC_WRITE) ?? 0
    const commits = proxy.calls.get(PROC_COMMIT) ?? 0
    t.equal(extra(c, 'writeback', 'resends'), 17, 'every unstable range re-sent')
    t.equal(writes, which === 'WRITE' ? 17 * 2 : 17 * 3, 'WRITEs: first sends and re-sends')
    t.equal(commits, which === 'WRITE' ? 2 : 3, 'a second COMMIT after the re-send')
    t.equal(extra(c, 'writeback', 'dirtyBytes'), 0)
    t.ok((await other.readFile('v')).equals(data), 'byte-exact on the server')
    // And as an independent client reads it (libnfs), when installed.
    const cat = await promisify(execFile)('nfs-cat', [fx.url('/export', '/v')], { encoding: 'buffer', maxBuffer: 8 * MIB }).catch(() => null)
    if (cat !== null) t.ok(cat.stdout.equals(data), 'nfs-cat reads the same bytes')
  })
}

t.test('writeAhead: a file holding one WRITE sends it FILE_SYNC at once; close then has nothing to send', async t => {
  const fx = await startServer(t)
  const c = await mountFiles(t, fx, { wsize: BS, rsize: BS })
  const f = await c.open('ahead', 'w')
  await f.write(Buffer.from('finished data'))
  const state = c.files.peekState(f.fh)
  if (state === undefined) throw new Error('no state for an open file')
  t.strictSame(await callsDuring(c, async () => {
    c.files.writeback.writeAhead(state)
    await writesSettled(c, f)
  }), { WRITE: 1 }, 'one WRITE, FILE_SYNC (no COMMIT follows)')
  t.strictSame(await callsDuring(c, () => f.close()), {}, 'close: nothing left')
  const g = await c.open('ahead-more', 'w')
  t.strictSame(await callsDuring(c, async () => {
    await g.write(Buffer.alloc(3 * BS, 1))
    await writesSettled(c, g)
  }), { WRITE: 3 }, 'full blocks go UNSTABLE as they fill')
  const many = c.files.peekState(g.fh)
  if (many === undefined) throw new Error('no state for an open file')
  t.strictSame(await callsDuring(c, async () => {
    c.files.writeback.writeAhead(many)
    await writesSettled(c, g)
  }), {}, 'data awaiting COMMIT: nothing is sent ahead')
  t.strictSame(await callsDuring(c, () => g.close()), { COMMIT: 1 }, 'UNSTABLE data: close commits')
  const other = await mountFiles(t, fx)
  t.equal((await other.readFile('ahead')).toString(), 'finished data')
})

t.test('a background write error (NOSPC) surfaces on close, with its errno', async t => {
  const fx = await startServer(t, undefined, {
    backends: new Map([['memory', () => new MemoryVfs({ capacityBytes: 1n << 20n })]]),
  })
  const c = await mountFiles(t, fx, { wsize: BS, rsize: BS })
  const f = await c.open('full', 'w')
  const data = random(2 * MIB)
  let caught: unknown = null
  try {
    for (let off = 0; off < data.length; off += BS) await f.write(data.subarray(off, off + BS))
  } catch (err) {
    caught = err
  }
  await t.rejects(f.close(), { code: 'NFS3ERR_NOSPC', errno: 'ENOSPC', procedure: 'WRITE' })
  t.ok(caught === null || (caught as { errno?: string }).errno === 'ENOSPC', 'a write may report it first')
  t.ok(extra(c, 'writeback', 'errors') > 0)
  t.equal(extra(c, 'writeback', 'dirtyBytes'), 0, 'failed data is not held forever')
  const g = await c.open('small', 'w')
  await g.write(Buffer.alloc(MIB))
  await t.rejects(g.fsync(), { code: 'NFS3ERR_NOSPC', errno: 'ENOSPC' }, 'fsync reports it too')
  await g.close()
})

t.test('the dirty limit makes write() wait for write-back and COMMIT', async t => {
  const fx = await startServer(t)
  const c = await mountFiles(t, fx, { wsize: BS, rsize: BS }, { dirtyLimitBytes: 4 * BS })
  const data = random(40 * BS)
  const f = await c.open('limited', 'w')
  for (let off = 0; off < data.length; off += 4 * KIB) await f.write(data.subarray(off, off + 4 * KIB))
  t.ok((c.stats().nfs.COMMIT ?? 0) >= 5, 'COMMITs forced by the limit')
  t.ok(extra(c, 'writeback', 'dirtyBytes') <= 4 * BS, 'held bytes stay under the limit')
  await f.close()
  const other = await mountFiles(t, fx)
  t.ok((await other.readFile('limited')).equals(data))
})

t.test('umount writes out and commits what open files hold', async t => {
  const fx = await startServer(t)
  const c = await mountFiles(t, fx, { wsize: BS, rsize: BS })
  const f = await c.open('left-open', 'w')
  await f.write(Buffer.from('not closed'))
  await c.umount()
  const other = await mountFiles(t, fx)
  t.equal((await other.readFile('left-open')).toString(), 'not closed')
})

t.test('blocks handed over from the pool are sent as they are, re-sent intact after a new verifier, and come back to the pool', async t => {
  const fx = await startServer(t)
  const proxy = await startVerfProxy(t, fx.port)
  const url = fx.url('/export', '', '').replace(`nfsport=${fx.port}&mountport=${fx.port}`, `nfsport=${proxy.port}&mountport=${fx.port}`)
  // A small dirty limit: COMMITs go out behind the writes, and the first two report a new verifier.
  const c = await mountFiles(t, url, { wsize: BS, rsize: BS }, { dirtyLimitBytes: 8 * BS })
  proxy.flip.set(PROC_COMMIT, 2)
  const data = random(40 * BS + 100)
  const f = await c.open('pooled', 'w')
  for (let off = 0; off < data.length; off += BS) {
    // If a slab came back while a re-send still needed it, the block written from it next would show up in its place.
    const buf = f.takeBuffer()
    const n = data.copy(buf, 0, off, Math.min(off + BS, data.length))
    await f.write(buf.subarray(0, n), off, { transfer: true })
  }
  await f.close()
  t.ok(extra(c, 'writeback', 'resends') > 0, `ranges re-sent after the new verifiers (${String(extra(c, 'writeback', 'resends'))})`)
  t.ok(c.buffers.reused > 0, `slabs came back and were lent again (${String(c.buffers.reused)} reuses, ${String(c.buffers.allocated)} slabs)`)
  t.equal(c.buffers.freeSlabs, c.buffers.allocated, 'every slab is back once the file is committed')
  t.equal(extra(c, 'writeback', 'dirtyBytes'), 0)
  const other = await mountFiles(t, fx)
  t.ok((await other.readFile('pooled')).equals(data), 'byte-exact on the server')
})

t.test('a writer faster than the server stays at most twice the write slots ahead of the answered WRITEs', async t => {
  const fx = await startServer(t)
  const proxy = await startVerfProxy(t, fx.port)
  const url = fx.url('/export', '', '').replace(`nfsport=${fx.port}&mountport=${fx.port}`, `nfsport=${proxy.port}&mountport=${fx.port}`)
  // The dirty limit far above what is written: only the WRITE queue can stop the writer.
  const c = await mountFiles(t, url, { wsize: BS, rsize: BS }, { writeSlots: 2, dirtyLimitBytes: 64 * MIB })
  const data = random(12 * BS)
  const f = await c.open('paced', 'w')
  proxy.hold.add(PROC_WRITE)
  const returned: number[] = []
  const writes: Promise<void>[] = []
  for (let i = 0; i < 6; i++) {
    const buf = f.takeBuffer()
    data.copy(buf, 0, i * BS, (i + 1) * BS)
    const w = f.write(buf.subarray(0, BS), i * BS, { transfer: true }).then(() => { returned.push(i) })
    writes.push(w)
    // Each write gets the chance to return before the next starts, as a copy loop's would.
    if (i < 4) await w
  }
  while ((proxy.calls.get(PROC_WRITE) ?? 0) < 2) await sleep(5)
  await sleep(50)
  t.same(returned, [0, 1, 2, 3], 'four blocks queued (two slots, two waiting); the fifth write waits for an answer')
  t.equal(proxy.calls.get(PROC_WRITE), 2, 'two WRITEs on the wire (writeSlots)')
  proxy.hold.clear()
  proxy.release()
  await Promise.all(writes)
  t.same(returned, [0, 1, 2, 3, 4, 5], 'the waiting writes return once WRITEs are answered')
  for (let i = 6; i < 12; i++) {
    const buf = f.takeBuffer()
    data.copy(buf, 0, i * BS, (i + 1) * BS)
    await f.write(buf.subarray(0, BS), i * BS, { transfer: true })
  }
  await f.close()
  const other = await mountFiles(t, fx)
  t.ok((await other.readFile('paced')).equals(data), 'byte-exact on the server')
})

t.test('a handed-over block that a later write overlaps is not given back while its bytes are held', async t => {
  const fx = await startServer(t)
  const c = await mountFiles(t, fx, { wsize: BS, rsize: BS })
  const f = await c.open('overlap', 'w')
  const first = f.takeBuffer()
  first.fill(0x11)
  await f.write(first, 0, { transfer: true })
  await writesSettled(c, f)
  // Half of it replaced (held as dirty, the unstable segment cut): the other half still needs the slab.
  await f.write(Buffer.alloc(BS / 2, 0x22), 0)
  t.equal(c.buffers.freeSlabs, 0, 'still lent')
  await f.close()
  t.equal(c.buffers.freeSlabs, 1, 'back after the COMMIT')
  const other = await mountFiles(t, fx)
  t.ok((await other.readFile('overlap')).equals(Buffer.concat([Buffer.alloc(BS / 2, 0x22), Buffer.alloc(BS / 2, 0x11)])))
})

t.test('buffers handed over with a release callback: released once each, after which the client never touches them', async t => {
  const fx = await startServer(t)
  const proxy = await startVerfProxy(t, fx.port)
  const url = fx.url('/export', '', '').replace(`nfsport=${fx.port}&mountport=${fx.port}`, `nfsport=${proxy.port}&mountport=${fx.port}`)
  const c = await mountFiles(t, url)
  // New verifiers: re-sends from the handed-over buffers, the last round FILE_SYNC (whose reply releases at once).
  proxy.flip.set(PROC_COMMIT, 3)
  const data = random(40 * MIB + 777)
  const f = await c.open('released', 'w')
  // Released buffers are transferred away, as the FUSE session gives them back to its reader: any later use throws.
  const { port1, port2 } = new MessageChannel()
  t.teardown(() => {
    port1.close()
    port2.close()
  })
  const releases = new Map<number, number>()
  for (let off = 0; off < data.length; off += MIB) {
    const ab = new ArrayBuffer(MIB + 4096)
    const buf = Buffer.from(ab, 100, Math.min(MIB, data.length - off))
    data.copy(buf, 0, off, off + buf.length)
    const at = off
    await f.write(buf, off, {
      transfer: true,
      release: () => {
        releases.set(at, (releases.get(at) ?? 0) + 1)
        port1.postMessage(ab, [ab])
      },
    })
  }
  await f.close()
  t.equal(extra(c, 'writeback', 'errors'), 0, 'no write touched a released buffer')
  t.ok(extra(c, 'writeback', 'resends') > 0, 're-sent after the new verifiers')
  t.equal(releases.size, 41, 'every buffer released')
  t.ok([...releases.values()].every(n => n === 1), 'each exactly once')
  const other = await mountFiles(t, fx)
  t.ok((await other.readFile('released')).equals(data), 'byte-exact on the server')
  // A part block is copied, so its buffer goes back before write() returns: the count is still right.
  const g = await c.open('part', 'w')
  const ab = new ArrayBuffer(1000)
  t.equal(await g.write(Buffer.from(ab, 0, 777), 0, { transfer: true, release: () => { port1.postMessage(ab, [ab]) } }), 777, 'the length written')
  t.equal(ab.byteLength, 0, 'released (detached) by then')
  await g.close()
  // A write that fails before it starts still releases what it was handed.
  let early = 0
  await t.rejects(f.write(Buffer.alloc(10), 0, { transfer: true, release: () => { early++ } }), { code: 'NFS_CLIENT_EBADF' })
  t.equal(early, 1, 'released by a failed write')
})
