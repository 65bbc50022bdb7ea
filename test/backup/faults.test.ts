/*
 * Bad input and faults: a corrupt header, a truncated stream and a bad pax record give a
 * BackupFormatError naming the stream and the exact offset, with everything before restored; a
 * crafted stream cannot escape the target through a symlink or '..'; a file changing while read
 * is noted, not fatal; verify catches a flipped data byte; gzip and brotli streams restore.
 */
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { backupFormat, verifyBackup } from '../../backup/index.ts'
import { BackupFormatError } from '../../backup/types.ts'
import type { ByteSink, FileHistoryEntry } from '../../backup/types.ts'
import { TarWriter } from '../../backup/tar/writer.ts'
import { MemoryVfs } from '../../vfs/memory/memory-vfs.ts'
import { bufferSource, memorySink, resolve, snapshotTree, writeFile } from './helpers.ts'

const OWNER = { uid: 0, gid: 0 }

async function sample(): Promise<{ vfs: MemoryVfs; stream: Buffer; files: FileHistoryEntry[] }> {
  const vfs = new MemoryVfs({ rootMode: 0o755 })
  await writeFile(vfs, 'a1.txt', 'first\n')
  await writeFile(vfs, 'a2.bin', Buffer.alloc(100_000, 3))
  await writeFile(vfs, 'a3.txt', 'third\n')
  await writeFile(vfs, 'a4.txt', 'fourth\n')
  const sink = memorySink()
  const files: FileHistoryEntry[] = []
  await backupFormat.writeBackup({ vfs, root: vfs.root(), live: false, name: '/s' }, sink, { level: 0, base: null, onFile: (e) => files.push(e) })
  return { vfs, stream: sink.bytes(), files }
}

async function restore(stream: Buffer): Promise<{ target: MemoryVfs; err: unknown }> {
  const target = new MemoryVfs({ rootMode: 0o755 })
  let err: unknown = null
  try {
    await backupFormat.readBackup(bufferSource(stream, 4096), 'tape7', { kind: 'vfs', vfs: target, root: target.root(), owner: OWNER }, { overwrite: false, applyDeletions: false })
  } catch (e) {
    err = e
  }
  return { target, err }
}

function offsetOf(files: FileHistoryEntry[], p: string): number {
  const f = files.find((x) => x.path === p)
  if (f === undefined) throw new Error(`no ${p}`)
  return Number(f.offset)
}

t.test('a corrupt header checksum: exact error, earlier files restored', async (t) => {
  const { stream, files } = await sample()
  const at = offsetOf(files, 'a3.txt')
  const bad = Buffer.from(stream)
  bad[at + 3] = (bad[at + 3] ?? 0) ^ 0x20 // inside the name of a3's pax header block
  const { target, err } = await restore(bad)
  t.type(err, BackupFormatError)
  t.equal((err as BackupFormatError).source, 'tape7', 'names the stream')
  t.equal((err as BackupFormatError).offset, BigInt(at), 'names the offset of the bad block')
  t.match((err as Error).message, /checksum/)
  const snap = await snapshotTree(target)
  t.same(Object.keys(snap), ['a1.txt', 'a2.bin'], 'everything before the fault is restored')
  t.equal(snap['a2.bin']?.size, '100000', 'whole')
})

t.test('a truncated stream: exact error at the cut, earlier files restored', async (t) => {
  const { stream, files } = await sample()
  const cut = offsetOf(files, 'a2.bin') + 1024 + 50_000
  const { target, err } = await restore(stream.subarray(0, cut))
  t.type(err, BackupFormatError)
  t.equal((err as BackupFormatError).offset, BigInt(cut), 'the offset is where the stream ends')
  t.match((err as Error).message, /truncated: the stream ends inside a member body/)
  t.same(Object.keys(await snapshotTree(target)).sort(), ['a1.txt', 'a2.bin'], 'a1 whole; a2 partly written before the cut')

  const boundary = offsetOf(files, 'a3.txt')
  const r2 = await restore(stream.subarray(0, boundary))
  t.match((r2.err as Error).message, /ends without the end-of-archive blocks/, 'a cut between members is still a truncation')
  t.equal((r2.err as BackupFormatError).offset, BigInt(boundary))
})

t.test('a bad pax record: exact error at the record', async (t) => {
  const { stream, files } = await sample()
  const at = offsetOf(files, 'a4.txt')
  const bad = Buffer.from(stream)
  // The body of a4's pax header starts one block after its header: break the first record's length.
  bad.write('9', at + 512, 'ascii')
  bad.write('9', at + 513, 'ascii')
  const { target, err } = await restore(bad)
  t.type(err, BackupFormatError)
  t.equal((err as BackupFormatError).offset, BigInt(at + 512), 'the offset of the bad record')
  t.match((err as Error).message, /pax record length 99 does not fit/)
  t.same(Object.keys(await snapshotTree(target)), ['a1.txt', 'a2.bin', 'a3.txt'])
})

t.test('a crafted stream cannot leave the target', async (t) => {
  const dir = t.testdir({ target: {}, outside: {} })
  const outside = path.join(dir, 'outside')
  const sink = memorySink()
  const w = new TarWriter(sink)
  const ts = { sec: 1_700_000_000, nsec: 0 }
  const base = { mode: 0o644, uid: 0, gid: 0, size: 0n, atime: ts, mtime: ts, ctime: ts }
  await w.begin({ ...base, path: 'esc', type: 'symlink', linkTarget: outside })
  await w.begin({ ...base, path: 'esc/pwned', type: 'file', size: 5n })
  await w.data(Buffer.from('owned'))
  await w.begin({ ...base, path: '../up.txt', type: 'file', size: 2n })
  await w.data(Buffer.from('up'))
  await w.begin({ ...base, path: 'ok.txt', type: 'file', size: 2n })
  await w.data(Buffer.from('ok'))
  await w.finish()
  for (const kind of ['host', 'vfs'] as const) {
    const mem = new MemoryVfs({ rootMode: 0o755 })
    const target = kind === 'host' ? { kind, dir: path.join(dir, 'target') } : { kind, vfs: mem, root: mem.root(), owner: OWNER }
    const logs: string[] = []
    const r = await backupFormat.readBackup(bufferSource(sink.bytes()), 'crafted', target, { overwrite: true, applyDeletions: false, onLog: (_l, m) => logs.push(m) })
    t.same(r.skipped.sort(), ['../up.txt', 'esc/pwned'], `${kind}: both escapes refused`)
    t.ok(logs.some((m) => m.includes("passes through 'esc', a symlink")), `${kind}: the log names the symlink`)
    t.same(fs.readdirSync(outside), [], `${kind}: nothing written outside`)
    t.equal(r.files, 2, `${kind}: the symlink itself and ok.txt are restored`)
  }
  t.equal(fs.readlinkSync(path.join(dir, 'target/esc')), outside, 'the symlink is created, never traversed')
  t.notOk(fs.existsSync(path.join(dir, 'up.txt')), 'no file above the target')
})

t.test('a file changing while it is read is noted, and the stream stays whole', async (t) => {
  const vfs = new MemoryVfs({ rootMode: 0o755 })
  const ref = await writeFile(vfs, 'growing.log', Buffer.alloc(8 * 1024 * 1024, 1))
  await writeFile(vfs, 'after.txt', 'after\n')
  const parts: Buffer[] = []
  let poked = false
  // A real writer racing the backup: the first big chunk that reaches the tape appends to the file.
  const sink: ByteSink = {
    async write(chunk: Buffer): Promise<void> {
      parts.push(Buffer.from(chunk))
      if (!poked && chunk.length >= 512 * 1024) {
        poked = true
        await vfs.write(ref, 8n * 1024n * 1024n, Buffer.from('more'), 'unstable')
      }
    },
  }
  const logs: string[] = []
  const files: FileHistoryEntry[] = []
  const sum = await backupFormat.writeBackup({ vfs, root: vfs.root(), live: true, name: '/live' }, sink, { level: 0, base: null, onLog: (_l, m) => logs.push(m), onFile: (e) => files.push(e) })
  t.same(sum.changed, ['growing.log'], 'the summary names it')
  t.equal(files.find((f) => f.path === 'growing.log')?.changedDuringBackup, true, 'its history entry says so')
  t.ok(logs.some((m) => m.includes('growing.log: changed while it was read')), 'the log says so')
  t.ok(logs.some((m) => m.includes('read live')), 'a live read is said in the log')
  const v = await verifyBackup(bufferSource(Buffer.concat(parts)), 'live')
  t.same(v.mismatched, [], 'the stream is consistent with its recorded checksums')
  t.same(v.changedDuringBackup, ['growing.log'])
  const target = new MemoryVfs({ rootMode: 0o755 })
  await backupFormat.readBackup(bufferSource(Buffer.concat(parts)), 'live', { kind: 'vfs', vfs: target, root: target.root(), owner: OWNER }, { overwrite: false, applyDeletions: false })
  t.equal((await snapshotTree(target))['growing.log']?.size, String(8 * 1024 * 1024), 'restored at the size it had when the read began')
  t.ok((await snapshotTree(target))['after.txt'], 'later files are there')
})

t.test('verify catches a flipped data byte; gzip and brotli streams restore and verify', async (t) => {
  const { vfs, stream, files } = await sample()
  const ok = await verifyBackup(bufferSource(stream), 'good')
  t.equal(ok.indexed, true)
  t.equal(ok.files, 4)
  t.same([ok.mismatched, ok.missing, ok.unindexed], [[], [], []], 'a good stream verifies')
  const bad = Buffer.from(stream)
  const at = offsetOf(files, 'a2.bin') + 1024 + 777 // inside a2's data
  bad[at] = (bad[at] ?? 0) ^ 1
  const v = await verifyBackup(bufferSource(bad), 'bad')
  t.same(v.mismatched, ['a2.bin'], 'the flipped file is named')
  for (const how of ['gzip', 'brotli'] as const) {
    const sink = memorySink()
    const sum = await backupFormat.writeBackup({ vfs, root: vfs.root(), live: false, name: '/s' }, sink, { level: 0, base: null, compress: how })
    const z = sink.bytes()
    t.ok(z.length < Number(sum.bytes) / 5, `${how}: compressed (${z.length} of ${sum.bytes} bytes)`)
    const target = new MemoryVfs({ rootMode: 0o755 })
    await backupFormat.readBackup(bufferSource(z), how, { kind: 'vfs', vfs: target, root: target.root(), owner: OWNER }, { overwrite: false, applyDeletions: false })
    t.same(await snapshotTree(target), await snapshotTree(vfs), `${how}: restores the tree`)
    const vz = await verifyBackup(bufferSource(z), how)
    t.same([vz.files, vz.mismatched], [4, []], `${how}: verifies`)
    const broken = Buffer.from(z.subarray(0, z.length - 40))
    await t.rejects(verifyBackup(bufferSource(broken), `${how}-cut`), BackupFormatError, `${how}: a cut stream is a format error`)
  }
})

t.test('an aborted backup stops with the signal reason', async (t) => {
  const vfs = new MemoryVfs({ rootMode: 0o755 })
  for (let i = 0; i < 50; i++) await writeFile(vfs, `f${i}`, 'x')
  const ac = new AbortController()
  let n = 0
  await t.rejects(
    backupFormat.writeBackup({ vfs, root: vfs.root(), live: false, name: '/a' }, memorySink(), {
      level: 0,
      base: null,
      signal: ac.signal,
      onFile: () => {
        if (++n === 10) ac.abort(new Error('operator abort'))
      },
    }),
    { message: 'operator abort' },
  )
  t.ok((await resolve(vfs, 'f0')).id > 0n, 'the source is untouched')
})
