import t from 'tap'
import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import { execFile } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { isDeepStrictEqual, promisify } from 'node:util'
import { ChangeLog } from '../../../server/replication/change-log.ts'
import type { ChangeLogOptions, LogIo } from '../../../server/replication/change-log.ts'
import { changeBytes } from '../../../server/replication/change-codec.ts'
import { HEADER_BYTES, parseRecord, sealRecord } from '../../../server/replication/log-format.ts'
import { fdatasync, writeAll } from '../../../server/replication/log-segment.ts'
import type { Change } from '../../../vfs/replica/change.ts'
import { VfsError } from '../../../vfs/errors.ts'
import { prng } from '../../helpers/prng.ts'
import { changeFor } from './log-appender.ts'
import { randomChanges } from './random-change.ts'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
const sh = promisify(execFile)
const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 100000)
t.comment(`seed ${String(seed)}`)

/** A log in a fresh test directory; closed at teardown. */
async function openLog(t: Test, o: Partial<ChangeLogOptions> & { dir?: string } = {}): Promise<ChangeLog> {
  const log = await ChangeLog.open({ exportId: 3, dir: o.dir ?? join(t.testdir(), 'replication', '3'), ...o })
  t.teardown(() => log.close())
  return log
}

/** Counts writes and fdatasyncs; `failSync(n)` makes the nth sync from now fail with `code`. */
function countingIo(): LogIo & { writes: number; syncs: number; failSync: (n: number, code: string) => void } {
  let failAt = -1
  let failCode = 'EIO'
  const io = {
    writes: 0,
    syncs: 0,
    failSync(n: number, code: string) {
      failAt = io.syncs + n
      failCode = code
    },
    async write(fd: number, data: Buffer, position: number) {
      io.writes++
      await writeAll(fd, data, position)
    },
    async sync(fd: number) {
      io.syncs++
      if (io.syncs === failAt) throw Object.assign(new Error(`${failCode}: injected fdatasync failure`), { code: failCode })
      await fdatasync(fd)
    },
  }
  return io
}

async function segmentFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.endsWith('.log')).sort()
}

/** Offsets of the records in a segment file. */
async function recordOffsets(path: string): Promise<number[]> {
  const buf = await readFile(path)
  const out: number[] = []
  for (let off = HEADER_BYTES; off < buf.length; ) {
    const p = parseRecord(buf, off, buf.length)
    if (p.kind !== 'record') break
    out.push(off)
    off = p.next
  }
  return out
}

async function readAll(log: ChangeLog, from = log.firstSeq()): Promise<Change[]> {
  return (await log.read(from, 1e9, 1e12)).map((c) => c.change)
}

t.test('an empty log, appends numbered from 1, durable, read back after reopen', async (t) => {
  const dir = join(t.testdir(), 'replication', '3')
  const log = await ChangeLog.open({ dir, exportId: 3 })
  t.equal(log.firstSeq(), 1n)
  t.equal(log.lastSeq(), 0n)
  t.strictSame(await log.read(1n, 10, 1000), [], 'nothing to read')
  const next = randomChanges(seed, false)
  const changes = Array.from({ length: 50 }, next)
  const seqs = changes.map((c) => log.append(c))
  t.strictSame(seqs, Array.from({ length: 50 }, (_, i) => BigInt(i + 1)), 'seqs 1..50 in call order')
  t.equal(log.lastSeq(), 50n)
  await log.durable(50n)
  t.equal(log.durableSeq(), 50n)
  await t.rejects(log.durable(51n), { name: 'VfsError', code: 'EINVAL' }, 'durable of a seq never appended')
  t.strictSame(await readAll(log), changes, 'read from memory')
  await log.close()
  t.throws(() => log.append(next()), { name: 'VfsError', code: 'EIO', message: `change log ${dir} is closed` })
  await t.rejects(log.read(1n, 1, 1), { name: 'ReplicationError', code: 'REPL_CLOSED' })
  t.strictSame(await segmentFiles(dir), ['00000000000000000001.log'])
  const again = await openLog(t, { dir })
  t.equal(again.lastSeq(), 50n)
  t.equal(again.firstSeq(), 1n)
  t.strictSame(await readAll(again), changes, 'read from the file after reopen')
  t.equal(again.append(next()), 51n, 'numbering goes on')
})

t.test('group commit: concurrent appends share writes and fdatasyncs', async (t) => {
  const io = countingIo()
  const log = await openLog(t, { io })
  const next = randomChanges(seed, false)
  const N = 200
  // N appenders, each in its own macrotask, each waiting for its change to be durable.
  const seqs = await Promise.all(
    Array.from({ length: N }, (_, i) =>
      new Promise<void>((res) => setTimeout(res, i % 20)).then(async () => {
        const seq = log.append(next())
        await log.durable(seq)
        return seq
      }),
    ),
  )
  t.equal(new Set(seqs).size, N, 'every append got its own seq')
  t.equal(log.durableSeq(), BigInt(N))
  t.ok(io.syncs < N, `${String(io.syncs)} fdatasyncs for ${String(N)} appends`)
  t.equal(io.writes, io.syncs, 'one write per fdatasync')
  t.equal(log.stats().groups, io.syncs, 'one group per fdatasync (no segment rolled)')
  t.equal(log.stats().syncs, io.syncs + 1, 'plus one directory fsync for the new segment')
  // A burst in one turn of the event loop is one group.
  const before = io.syncs
  const burst = Array.from({ length: 100 }, () => log.append(next()))
  await Promise.all(burst.map((s) => log.durable(s)))
  t.equal(io.syncs - before, 1, '100 appends in one turn: one fdatasync')
})

t.test('read across segments, from the files and from the in-memory tail, in batches', async (t) => {
  const dir = join(t.testdir(), 'log')
  const log = await openLog(t, { dir, segmentBytes: 8192 })
  const next = randomChanges(seed + 1, false)
  const changes: Change[] = []
  for (let round = 0; round < 8; round++) {
    for (let i = 0; i < 100; i++) changes.push(next())
    const last = changes.slice(-100).map((c) => log.append(c)).at(-1) ?? 0n
    await log.durable(last)
  }
  const files = await segmentFiles(dir)
  t.ok(files.length > 5, `${String(files.length)} segments`)
  t.strictSame(await readAll(log), changes, 'everything, from memory')
  // The tail really is memory: with the files gone from under it, the log still serves it.
  const saved = await Promise.all(files.map(async (f) => [f, await readFile(join(dir, f))] as const))
  for (const f of files) await truncate(join(dir, f), 0)
  t.strictSame(await readAll(log), changes, 'served from the in-memory tail alone')
  for (const [f, data] of saved) await writeFile(join(dir, f), data)
  await log.close()

  const reopened = await openLog(t, { dir, segmentBytes: 8192, memoryBytes: 0 })
  const r = prng(seed)
  for (let k = 0; k < 30; k++) {
    const from = 1n + BigInt(Math.floor(r() * changes.length))
    const max = 1 + Math.floor(r() * 200)
    const got = await reopened.read(from, max, 1e12)
    const want = changes.slice(Number(from) - 1, Number(from) - 1 + max)
    if (!isDeepStrictEqual(got.map((c) => c.change), want)) t.strictSame(got.map((c) => c.change), want, `read(${String(from)}, ${String(max)})`)
    t.strictSame(got.map((c) => c.seq), want.map((_, i) => from + BigInt(i)), `read(${String(from)}, ${String(max)}): seqs from the files, across segments`)
  }
  // A byte budget: at least one change, then whole changes while they fit.
  const one = await reopened.read(5n, 100, 1)
  t.equal(one.length, 1, 'at least one change even over the byte budget')
  const some = await reopened.read(5n, 1000, 2000)
  const bytes = some.reduce((n, c) => n + c.bytes, 0)
  t.ok(some.length === 1 || bytes <= 2000, `${String(some.length)} changes in ${String(bytes)} bytes`)
  const after = await reopened.read(5n + BigInt(some.length), 1, 1e9)
  t.ok(bytes + (after[0]?.bytes ?? 0) > 2000, 'the next change would not have fit')
  t.strictSame(await reopened.read(BigInt(changes.length + 1), 10, 1000), [], 'past the end: nothing')
  // Appending after reopen: new records follow in the last segment and read back through both paths.
  const more = [next(), next()]
  for (const c of more) reopened.append(c)
  await reopened.durable(reopened.lastSeq())
  t.strictSame(await readAll(reopened), [...changes, ...more])
})

t.test('trim deletes whole segments up to seq, never the newest; reads below firstSeq say REPL_TRIMMED', async (t) => {
  const dir = join(t.testdir(), 'log')
  const log = await openLog(t, { dir, segmentBytes: 4096, memoryBytes: 0 })
  const next = randomChanges(seed + 2, false)
  const changes = Array.from({ length: 300 }, next)
  for (const c of changes) log.append(c)
  await log.durable(300n)
  const files = await segmentFiles(dir)
  const firsts = files.map((f) => BigInt(f.slice(0, 20)))
  const cutAt = firsts[3] ?? 0n
  await log.trim(cutAt - 1n)
  // Segments 0..2 end at firsts[3] - 1 at the latest; segment 3 starts at firsts[3], so it stays.
  t.strictSame(await segmentFiles(dir), files.slice(3), 'the first three segments are gone')
  t.equal(log.firstSeq(), cutAt)
  await t.rejects(log.read(cutAt - 1n, 10, 1e6), {
    name: 'ReplicationError',
    code: 'REPL_TRIMMED',
    message: `change log ${dir}: change ${String(cutAt - 1n)} was trimmed, the log starts at ${String(cutAt)}`,
  })
  t.strictSame(await readAll(log, cutAt), changes.slice(Number(cutAt) - 1), 'the rest reads')
  await log.trim(300n)
  t.strictSame(await segmentFiles(dir), files.slice(-1), 'trim to the end keeps the newest segment')
  t.equal(log.lastSeq(), 300n)
  await log.close()
  const again = await openLog(t, { dir })
  t.equal(again.firstSeq(), firsts.at(-1), 'firstSeq survives reopen')
  t.equal(again.lastSeq(), 300n, 'and so does the numbering')
})

t.test('retention: past the byte cap the oldest segments go even if unread', async (t) => {
  const dir = join(t.testdir(), 'log')
  const log = await openLog(t, { dir, segmentBytes: 4096, retentionBytes: 16384, memoryBytes: 0 })
  const next = randomChanges(seed + 3, false)
  for (let i = 0; i < 1000; i++) log.append(next())
  await log.durable(1000n)
  // The writer deletes the old segments just after the group's waiters are released.
  await log.settled()
  const s = log.stats()
  t.ok(s.diskBytes <= 16384, `${String(s.diskBytes)} bytes on disk`)
  const sizes = await Promise.all((await segmentFiles(dir)).map(async (f) => (await stat(join(dir, f))).size))
  t.equal(sizes.reduce((a, b) => a + b, 0), s.diskBytes, 'the count matches the files')
  t.ok(log.firstSeq() > 1n, `firstSeq ${String(log.firstSeq())}`)
  await log.close()
  const again = await openLog(t, { dir })
  t.equal(again.firstSeq(), log.firstSeq(), 'the files say the same after reopen')
  await t.rejects(again.read(1n, 10, 1e6), { code: 'REPL_TRIMMED' }, 'a standby at 0 needs a full resync')
  t.equal((await again.read(again.firstSeq(), 1e6, 1e12)).length, Number(1000n - again.firstSeq() + 1n))
})

t.test('an old segment that cannot be deleted costs disk, not the log', { skip: process.getuid?.() === 0 ? false : 'needs root for chattr +i' }, async (t) => {
  // Not under t.testdir(): tap removes that before teardowns run, and an immutable file would stop it.
  const dir = await mkdtemp(join(tmpdir(), 'tsnfs-log-stuck-'))
  const log = await ChangeLog.open({ dir, exportId: 3, segmentBytes: 4096, retentionBytes: 8192 })
  const next = randomChanges(seed + 9, false)
  // Until the oldest segment is sealed (a second one begun): the one being written is not what this
  // tests, and 40 small changes of some seeds (61029) fit in one segment, which then could not be written.
  for (let i = 0; i < 10_000 && (i < 40 || (await segmentFiles(dir)).length < 2); i++) {
    log.append(next())
    await log.durable(log.lastSeq())
  }
  // durable() resolves before the writer deletes segments past the cap: wait for that too.
  await log.settled()
  t.ok((await segmentFiles(dir)).length >= 2, 'the oldest segment is sealed')
  const stuck = join(dir, (await segmentFiles(dir))[0] ?? '')
  t.teardown(async () => {
    await sh('chattr', ['-i', stuck]).catch(() => undefined)
    await rm(dir, { recursive: true })
  })
  // An immutable file: unlink fails with EPERM even for root.
  await sh('chattr', ['+i', stuck])
  for (let i = 0; i < 200; i++) log.append(next())
  await log.durable(log.lastSeq())
  t.doesNotThrow(() => log.append(next()), 'the log goes on')
  await log.durable(log.lastSeq())
  await log.close()
  t.ok(log.stats().retainErrors >= 1, `${String(log.stats().retainErrors)} failed deletions counted`)
  const files = await segmentFiles(dir)
  t.equal(files[0], stuck.slice(dir.length + 1), 'the stuck segment is still there, the oldest')
  t.ok(files.length > 2, 'and the segments after it stay too, so the log has no hole')
  const again = await ChangeLog.open({ dir, exportId: 3 })
  t.equal(again.firstSeq(), BigInt(files[0]?.slice(0, 20) ?? '0'), 'it reopens from the stuck segment')
  await again.close()
})

t.test('a torn tail is cut at open, a torn header rewritten; appends go on from there', async (t) => {
  const dir = join(t.testdir(), 'log')
  const log = await openLog(t, { dir, segmentBytes: 4096 })
  const next = randomChanges(seed + 4, false)
  const changes = Array.from({ length: 100 }, next)
  for (const c of changes) log.append(c)
  await log.durable(100n)
  await log.close()
  const files = await segmentFiles(dir)
  const last = join(dir, files.at(-1) ?? '')
  const offsets = await recordOffsets(last)
  const lastOff = offsets.at(-1) ?? 0
  const size = (await stat(last)).size
  await truncate(last, lastOff + 20)
  const a = await openLog(t, { dir })
  t.equal(a.lastSeq(), 99n, 'the torn record is gone')
  t.equal(a.stats().cutAtOpen, 20)
  t.equal((await stat(last)).size, lastOff, 'and cut from the file')
  t.strictSame(await readAll(a), changes.slice(0, 99))
  t.equal(a.append(changes[99] ?? next()), 100n)
  await a.durable(100n)
  await a.close()
  t.equal((await stat(last)).size, size, 'the same record written again')
  // A record header cut short (fewer than 16 bytes) is a torn tail too.
  await truncate(last, lastOff + 7)
  const b = await openLog(t, { dir })
  t.equal(b.lastSeq(), 99n)
  await b.close()
  // Killed while creating the next segment: the file holds part of its header.
  const name = join(dir, '00000000000000000100.log')
  await writeFile(name, Buffer.from('TSNFS'))
  const c = await openLog(t, { dir })
  t.equal(c.lastSeq(), 99n, 'a torn new segment holds nothing')
  t.equal((await stat(name)).size, HEADER_BYTES, 'its header is written again')
  t.equal(c.append(changes[99] ?? next()), 100n)
  await c.durable(100n)
  t.strictSame(await readAll(c), changes)
})

t.test('damage before the tail: REPL_LOG_CORRUPT naming file and offset', async (t) => {
  const dir = join(t.testdir(), 'log')
  const log = await openLog(t, { dir, segmentBytes: 4096 })
  const next = randomChanges(seed + 5, false)
  for (let i = 0; i < 120; i++) log.append(next())
  await log.durable(120n)
  await log.close()
  // Reopened with room to spare, so the last segment surely holds a dozen records.
  const more = await openLog(t, { dir, segmentBytes: 1 << 20 })
  for (let i = 0; i < 12; i++) more.append(next())
  await more.durable(132n)
  await more.close()
  const files = await segmentFiles(dir)
  t.ok(files.length >= 3)
  const flip = async (file: string, offset: number): Promise<() => Promise<void>> => {
    const buf = await readFile(file)
    const copy = Buffer.from(buf)
    buf[offset] = (buf[offset] ?? 0) ^ 0x40
    await writeFile(file, buf)
    return () => writeFile(file, copy)
  }
  // A 4 KiB symlink target fills a 4 KiB segment alone, so the sealed segment tried is one
  // that holds at least two records (the damaged one must have records after it).
  let sealed = ''
  for (const f of files.slice(0, -1)) if (sealed === '' && (await recordOffsets(join(dir, f))).length >= 2) sealed = join(dir, f)
  t.not(sealed, '', 'some sealed segment holds two records or more')
  for (const [where, file] of [['a sealed segment', sealed], ['the last segment, with records after it', join(dir, files.at(-1) ?? '')]] as const) {
    const offsets = await recordOffsets(file)
    t.ok(offsets.length >= 2, `${where} holds ${String(offsets.length)} records`)
    const mid = offsets[Math.floor(offsets.length / 2) - 1] ?? 0
    // A byte of the change, then the length field (its CRC covers it), then the seq.
    for (const [what, at] of [['data byte', mid + 20], ['length byte', mid + 2]] as const) {
      const restore = await flip(file, at)
      await t.rejects(ChangeLog.open({ dir, exportId: 3 }), {
        name: 'ReplicationError',
        code: 'REPL_LOG_CORRUPT',
        message: new RegExp(`^change log segment ${file}: (record CRC mismatch|record length \\d+|torn record) at offset ${String(mid)}$`),
      }, `${where}: a flipped ${what}`)
      await restore()
    }
  }
  // A record length near 4 GiB is refused before anything is allocated.
  const file = join(dir, files[0] ?? '')
  const buf = await readFile(file)
  const good = Buffer.from(buf)
  buf.writeUInt32BE(0xfffffff0, HEADER_BYTES)
  await writeFile(file, buf)
  await t.rejects(ChangeLog.open({ dir, exportId: 3 }), { code: 'REPL_LOG_CORRUPT', message: `change log segment ${file}: record length 4294967280 at offset ${String(HEADER_BYTES)}` })
  await writeFile(file, good)
  // A segment missing in the middle.
  await rm(join(dir, files[1] ?? ''))
  await t.rejects(ChangeLog.open({ dir, exportId: 3 }), { code: 'REPL_LOG_CORRUPT', message: /^change log segment .*: first seq \d+ does not follow \d+, the last of .* at offset 16$/ })
})

t.test('damage in headers, seqs, and damage found only when read', async (t) => {
  const dir = join(t.testdir(), 'log')
  const log = await openLog(t, { dir, segmentBytes: 4096 })
  const next = randomChanges(seed + 7, false)
  // The damage below lands in the first segment's records 2 to 4, so that segment must hold four: a segment
  // takes records up to 4096 bytes, and one 4 KiB symlink target among the first changes left it one or two
  // (TSNFS_SEED=46753: the seq damage overwrote the header instead). The first four are drawn under 900 bytes
  // encoded; the rest as they come, big ones included.
  const small = (): Change => {
    for (;;) {
      const c = next()
      if (changeBytes(c).length <= 900) return c
    }
  }
  const changes = Array.from({ length: 150 }, (_, i) => (i < 4 ? small() : next()))
  for (const c of changes) log.append(c)
  await log.durable(150n)
  await log.close()
  await writeFile(join(dir, 'notes.txt'), 'not a segment: ignored')
  const files = await segmentFiles(dir)
  const first = join(dir, files[0] ?? '')
  const second = join(dir, files[1] ?? '')
  const good = await readFile(first)
  const offsets = await recordOffsets(first)
  t.ok(offsets.length >= 4 && files.length >= 2, `the first of ${String(files.length)} segments holds ${String(offsets.length)} records`)
  const refuse = async (damaged: Buffer, message: string, what: string): Promise<void> => {
    await writeFile(first, damaged)
    await t.rejects(ChangeLog.open({ dir, exportId: 3 }), { name: 'ReplicationError', code: 'REPL_LOG_CORRUPT', message }, what)
    await writeFile(first, good)
  }
  const flipped = (at: number): Buffer => {
    const b = Buffer.from(good)
    b[at] = (b[at] ?? 0) ^ 1
    return b
  }
  await refuse(flipped(13), `change log segment ${first}: header CRC mismatch at offset 24`, 'a flipped export id byte')
  await refuse(good.subarray(0, 20), `change log segment ${first}: file ends inside the header at offset 20`, 'a sealed segment cut inside its header')
  const second0 = offsets[1] ?? 0
  // A record with a good CRC but the wrong seq (a copy of another), then one that does not decode.
  const wrongSeq = Buffer.from(good)
  sealRecord(wrongSeq.subarray(second0, offsets[2]), 77n)
  await refuse(wrongSeq, `change log segment ${first}: record seq 77, 2 expected, at offset ${String(second0)}`, 'a record out of sequence')
  // The header of one segment under another's name.
  const renamed = await readFile(second)
  await writeFile(second, Buffer.concat([good.subarray(0, HEADER_BYTES), renamed.subarray(HEADER_BYTES)]))
  await t.rejects(ChangeLog.open({ dir, exportId: 3 }), { code: 'REPL_LOG_CORRUPT', message: `change log segment ${second}: header first seq 1, the name says ${String(BigInt(files[1]?.slice(0, 20) ?? '0'))}, at offset 16` })
  await writeFile(second, renamed)

  // Damage after open is found when the file is read (memoryBytes 0: every read goes to the files).
  const opened = await openLog(t, { dir, memoryBytes: 0 })
  t.strictSame(await readAll(opened), changes, 'intact')
  await writeFile(first, flipped((offsets[3] ?? 0) + 20))
  await t.rejects(opened.read(1n, 1000, 1e9), { code: 'REPL_LOG_CORRUPT', message: `change log segment ${first}: record CRC mismatch at offset ${String(offsets[3])}` })
  await writeFile(first, good.subarray(0, offsets[2]))
  await t.rejects(opened.read(1n, 1000, 1e9), { code: 'REPL_LOG_CORRUPT', message: `change log segment ${first}: file ends at offset ${String(offsets[2])}` })
  // A record whose CRC checks but whose change does not decode (a bug, not damage): still refused, not passed on.
  const junk = Buffer.from(good)
  const frame = junk.subarray(second0, offsets[2])
  frame.fill(0xff, 16)
  sealRecord(frame, 2n)
  await writeFile(first, junk)
  await t.rejects(opened.read(2n, 1, 1e9), { code: 'REPL_LOG_CORRUPT', message: /^change log .*: change 2 does not decode: / })
  await writeFile(first, good)
  // Trimmed while a read was on its way to the file: REPL_TRIMMED, not ENOENT.
  await rm(first)
  const reading = t.rejects(opened.read(1n, 1000, 1e9), { code: 'REPL_TRIMMED', message: /change 1 was trimmed, the log starts at \d+$/ })
  await opened.trim(BigInt(files[1]?.slice(0, 20) ?? '0') - 1n)
  await reading
})

t.test('a small memory budget: records leave memory in order, reads fall back to the files', async (t) => {
  const log = await openLog(t, { memoryBytes: 2048 })
  const next = randomChanges(seed + 8, false)
  const changes: Change[] = []
  for (let round = 0; round < 30; round++) {
    const batch = Array.from({ length: 100 }, next)
    changes.push(...batch)
    for (const c of batch) log.append(c)
    await log.durable(log.lastSeq())
  }
  t.strictSame(await readAll(log), changes)
  t.strictSame((await log.read(2999n, 10, 1e9)).map((c) => c.seq), [2999n, 3000n])
})

t.test('another format version or another export: refused cleanly', async (t) => {
  const dir = join(t.testdir(), 'log')
  const log = await openLog(t, { dir })
  log.append(randomChanges(seed, false)())
  await log.durable(1n)
  await log.close()
  const file = join(dir, '00000000000000000001.log')
  await t.rejects(ChangeLog.open({ dir, exportId: 4 }), { code: 'REPL_LOG_CORRUPT', message: `change log segment ${file}: header of export 3, not 4, at offset 12` })
  const buf = await readFile(file)
  // Version 1 is the log before the map edits (an older tsnfs's), 3 a newer one's.
  for (const version of [1, 3]) {
    buf.writeUInt32BE(version, 8)
    await writeFile(file, buf)
    await t.rejects(ChangeLog.open({ dir, exportId: 3 }), {
      name: 'ReplicationError',
      code: 'REPL_LOG_VERSION',
      message: `change log segment ${file}: format version ${String(version)}, this tsnfs reads version 2 only`,
    })
  }
  buf.write('NOTALOG!', 0, 'latin1')
  await writeFile(file, buf)
  await t.rejects(ChangeLog.open({ dir, exportId: 3 }), { code: 'REPL_LOG_CORRUPT', message: `change log segment ${file}: no change log magic at offset 0` })
})

t.test('a failed fdatasync fails the log: waiters and later appends get EIO', async (t) => {
  const io = countingIo()
  const dir = join(t.testdir(), 'log')
  const log = await openLog(t, { dir, io })
  const next = randomChanges(seed + 6, false)
  log.append(next())
  await log.durable(1n)
  io.failSync(1, 'EIO')
  const seqs = [log.append(next()), log.append(next())]
  const results = await Promise.allSettled(seqs.map((s) => log.durable(s)))
  for (const r of results) {
    t.equal(r.status, 'rejected')
    if (r.status === 'rejected') t.match(r.reason, { name: 'VfsError', code: 'EIO', message: `change log ${dir}: EIO: injected fdatasync failure` })
  }
  t.throws(() => log.append(next()), { name: 'VfsError', code: 'EIO' }, 'a later append throws')
  await t.rejects(log.durable(3n), { code: 'EIO' })
  await log.durable(1n)
  t.pass('a change durable before the failure still is')
  t.equal(log.durableSeq(), 1n)
})

t.test('disk full (a 64 KiB tmpfs): durable rejects with EIO and nothing later pretends to succeed', { skip: process.getuid?.() === 0 ? false : 'needs root to mount a tmpfs' }, async (t) => {
  // Not under t.testdir(): tap removes that before teardowns run, and a mount point cannot go while mounted.
  const mnt = await mkdtemp(join(tmpdir(), 'tsnfs-log-full-'))
  t.teardown(async () => {
    await sh('umount', ['-l', mnt]).catch(() => undefined)
    await rm(mnt, { recursive: true })
  })
  await sh('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tsnfs-test-full', mnt])
  const dir = join(mnt, 'log')
  const log = await ChangeLog.open({ dir, exportId: 3 })
  const durable: bigint[] = []
  let failure: unknown = null
  for (let i = 1; i < 200 && failure === null; i++) {
    let seq: bigint
    try {
      seq = log.append(changeFor(BigInt(i)))
    } catch (err) {
      failure = err
      break
    }
    try {
      await log.durable(seq)
      durable.push(seq)
    } catch (err) {
      failure = err
    }
  }
  t.match(failure, { name: 'VfsError', code: 'EIO' }, 'the log failed')
  t.match((failure as VfsError).cause, { code: 'ENOSPC' }, 'because the disk is full')
  t.throws(() => log.append(changeFor(999n)), { code: 'EIO' })
  await t.rejects(log.durable(log.lastSeq()), { code: 'EIO' })
  t.ok(durable.length > 5, `${String(durable.length)} changes durable before ENOSPC`)
  await log.close()
  const again = await ChangeLog.open({ dir, exportId: 3 })
  t.teardown(() => again.close())
  t.equal(again.lastSeq(), BigInt(durable.length), 'reopened: exactly the durable changes')
  t.strictSame(await readAll(again), durable.map(changeFor))
})

t.test('durable awaits the gate after local durability', async (t) => {
  const gated: bigint[] = []
  let release: () => void = () => undefined
  const gate = async (seq: bigint): Promise<void> => {
    gated.push(seq)
    if (seq === 2n) await new Promise<void>((r) => (release = r))
    if (seq === 3n) throw new VfsError('EIO', 'standby gone')
  }
  const log = await openLog(t, { gate })
  const next = randomChanges(seed, false)
  log.append(next())
  await log.durable(1n)
  t.strictSame(gated, [1n])
  log.append(next())
  let done = false
  const p = log.durable(2n).then(() => (done = true))
  await log.settled()
  await new Promise((r) => setImmediate(r))
  t.equal(log.durableSeq(), 2n, 'on disk')
  t.equal(done, false, 'but the gate holds it')
  release()
  await p
  t.equal(done, true)
  log.append(next())
  await t.rejects(log.durable(3n), { code: 'EIO', message: 'standby gone' }, 'a gate failure reaches the caller')
})

t.test('waitAfter: at once when there is a later change, on the next append, aborted, closed', async (t) => {
  const log = await openLog(t)
  const next = randomChanges(seed, false)
  log.append(next())
  await log.waitAfter(0n)
  let woke = false
  const w = log.waitAfter(1n).then(() => (woke = true))
  await new Promise((r) => setImmediate(r))
  t.equal(woke, false)
  log.append(next())
  await w
  t.equal(woke, true)
  const ac = new AbortController()
  const aborted = log.waitAfter(2n, ac.signal)
  ac.abort()
  await t.rejects(aborted, { name: 'AbortError' })
  const closed = t.rejects(log.waitAfter(2n), { name: 'ReplicationError', code: 'REPL_CLOSED' })
  await log.close()
  await closed
})

t.test('SIGKILL mid-append: every change whose durable() resolved is there, the tail cut cleanly', async (t) => {
  const dir = join(t.testdir(), 'log')
  const r = prng(seed)
  let cut = 0
  for (let round = 0; round < 2; round++) {
    const killAfter = 50 + Math.floor(r() * 300)
    const mode = round === 0 ? 'whole' : 'pieces'
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/server/replication/log-appender.ts'), dir, '32768', mode], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    t.teardown(() => child.kill('SIGKILL'))
    const printed: bigint[] = []
    let buffered = ''
    await new Promise<void>((res, rej) => {
      child.on('error', rej)
      child.on('exit', (code) => {
        rej(new Error(`appender exited with ${String(code)}`))
      })
      child.stdout.on('data', (chunk: Buffer) => {
        buffered += chunk.toString()
        const lines = buffered.split('\n')
        buffered = lines.pop() ?? ''
        for (const l of lines) printed.push(BigInt(l))
        if (printed.length >= killAfter) res()
      })
    })
    child.removeAllListeners('exit')
    const exited = new Promise((res) => child.on('exit', res))
    child.kill('SIGKILL')
    await exited
    const log = await ChangeLog.open({ dir, exportId: 3 })
    const max = printed.reduce((a, b) => (a > b ? a : b), 0n)
    t.ok(log.lastSeq() >= max, `round ${String(round)}: killed after ${String(printed.length)} printed; the log ends at ${String(log.lastSeq())} >= ${String(max)} (cut ${String(log.stats().cutAtOpen)} bytes)`)
    const all = await log.read(1n, 1e9, 1e12)
    t.equal(all.length, Number(log.lastSeq()), 'every change from 1 on reads back')
    const wrong = all.filter((c) => !isDeepStrictEqual(c.change, changeFor(c.seq)))
    t.strictSame(wrong, [], 'each is the change the child appended')
    cut += log.stats().cutAtOpen
    // Cut cleanly: the next append lands right after the last good record, and the next open finds nothing to cut.
    const seq = log.append(changeFor(log.lastSeq() + 1n))
    await log.durable(seq)
    await log.close()
    const again = await ChangeLog.open({ dir, exportId: 3 })
    t.equal(again.stats().cutAtOpen, 0, 'a clean log after the cut')
    t.equal(again.lastSeq(), seq)
    t.strictSame((await again.read(seq, 1, 1e6)).map((c) => c.change), [changeFor(seq)])
    await again.close()
  }
  t.comment(`${String(cut)} bytes of torn records cut over the two kills`)
})
