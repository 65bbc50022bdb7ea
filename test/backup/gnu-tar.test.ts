/*
 * GNU tar lists and extracts what we write (pax headers, long names, ns times, owners, symlinks,
 * hard links, sparse files, FIFOs, devices, a 10 GiB sparse member), and our reader restores GNU
 * tar's own pax output, sparse files included.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { backupFormat } from '../../backup/index.ts'
import { TarWriter } from '../../backup/tar/writer.ts'
import { LocalVfs } from '../../vfs/local/local-vfs.ts'
import { MemoryVfs } from '../../vfs/memory/memory-vfs.ts'
import { fileSink, fileSource, link, mkdirp, resolve, snapshotTree, symlink, writeFile } from './helpers.ts'

const isRoot = process.getuid?.() === 0
const LONG_DIR = 'd'.repeat(120)
const LONG_NAME = 'n'.repeat(200)

async function sampleTree(): Promise<MemoryVfs> {
  const vfs = new MemoryVfs({ rootMode: 0o755 })
  await writeFile(vfs, 'plain.txt', 'hello\n', 0o640)
  await writeFile(vfs, 'empty', '')
  await writeFile(vfs, 'big.bin', Buffer.alloc(3 * 1024 * 1024 + 17, 0x5a))
  await writeFile(vfs, `${LONG_DIR}/${LONG_NAME}`, 'long names\n')
  await writeFile(vfs, 'ünïcödé/ファイル', 'utf8 names\n')
  await symlink(vfs, 'link-rel', 'plain.txt')
  await symlink(vfs, 'link-long', `${LONG_DIR}/${LONG_NAME}`)
  await link(vfs, 'plain.txt', 'sub/hard')
  const owned = await writeFile(vfs, 'owned', 'x')
  await vfs.setattr(owned, { uid: 3_000_000, gid: 1234, mtime: { sec: 1_700_000_000, nsec: 123_456_789 } })
  await vfs.setattr(await resolve(vfs, 'plain.txt'), { mtime: { sec: 1_600_000_000, nsec: 987_654_321 } })
  const sparse = await writeFile(vfs, 'sparse.img', '')
  await vfs.write(sparse, 5n * 1024n * 1024n, Buffer.alloc(8192, 1), 'file_sync')
  await vfs.write(sparse, 0n, Buffer.from('head'), 'file_sync')
  await vfs.setattr(sparse, { size: 20n * 1024n * 1024n })
  await vfs.mknod(await mkdirp(vfs, 'dev'), Buffer.from('fifo'), 'fifo', { major: 0, minor: 0 }, { mode: 0o600 }, { uid: 0, gid: 0 })
  await vfs.mknod(await mkdirp(vfs, 'dev'), Buffer.from('null'), 'char', { major: 1, minor: 3 }, { mode: 0o666 }, { uid: 0, gid: 0 })
  await vfs.mknod(await mkdirp(vfs, 'dev'), Buffer.from('sock'), 'socket', { major: 0, minor: 0 }, { mode: 0o600 }, { uid: 0, gid: 0 })
  return vfs
}

t.test('GNU tar lists and extracts our backup exactly', async (t) => {
  const dir = t.testdir({ out: {}, state: {} })
  const vfs = await sampleTree()
  const tape = path.join(dir, 'tape.tar')
  const sink = fileSink(tape)
  const logs: string[] = []
  const sum = await backupFormat.writeBackup({ vfs, root: vfs.root(), live: false, name: '/x' }, sink, { level: 0, base: null, onLog: (_l, m) => logs.push(m) })
  sink.close()
  t.equal(sum.bytes, BigInt(fs.statSync(tape).size), 'summary bytes are the stream size')
  t.ok(logs.some((m) => m.includes('dev/sock') && m.includes('socket')), 'the socket is skipped with a log line')

  const listing = spawnSync('tar', ['-tvf', tape], { encoding: 'utf8' })
  t.equal(listing.status, 0, 'tar -tvf exits 0')
  t.equal(listing.stderr, '', 'tar -tvf says nothing on stderr (no unknown keywords)')
  t.match(listing.stdout, `${LONG_DIR}/${LONG_NAME}`, 'long name listed whole')
  t.match(listing.stdout, /3000000\/1234 .* owned/, 'large uid listed')
  t.match(listing.stdout, /sub\/hard link to plain.txt/, 'hard link listed')
  t.match(listing.stdout, /sparse.img/, 'sparse file listed by its real name')
  t.notMatch(listing.stdout, /GNUSparseFile/, 'no stand-in name shown')
  t.match(listing.stdout, /^crw-rw-rw- 0\/0 +1,3 .*dev\/null$/m, 'char device with its numbers')

  const out = path.join(dir, 'out')
  const x = spawnSync('tar', ['--numeric-owner', '-xf', tape, '-C', out], { encoding: 'utf8' })
  t.equal(x.status, 0, 'tar -xf exits 0')
  t.equal(x.stderr, '', 'tar -xf says nothing on stderr')
  const host = new LocalVfs({ root: out, stateDir: path.join(dir, 'state') })
  t.teardown(() => host.close())
  const want = await snapshotTree(vfs)
  const got = await snapshotTree(host)
  delete want['dev/sock']
  if (!isRoot) {
    delete want['dev/null'] // only root makes device nodes
    for (const e of [...Object.values(want), ...Object.values(got)]) {
      e.uid = 0
      e.gid = 0
    }
  }
  // Symlink times: tar sets them too; kept in the comparison.
  t.same(got, want, 'extracted tree equals the source: data, modes, owners, ns mtimes, links, sparse')
  t.equal(fs.statSync(path.join(out, 'sub/hard')).ino, fs.statSync(path.join(out, 'plain.txt')).ino, 'the hard link is one inode')
  t.ok(fs.statSync(path.join(out, 'sparse.img')).blocks * 512 < 1024 * 1024, 'the sparse file stays sparse on extraction')
})

t.test('a 10 GiB sparse member: its real size in pax, listed and extracted by GNU tar', async (t) => {
  const dir = t.testdir({ out: {} })
  const tape = path.join(dir, 'big.tar')
  const sink = fileSink(tape)
  const w = new TarWriter(sink)
  const size = 10n * 1024n ** 3n
  const ts = { sec: 1_700_000_000, nsec: 5 }
  await w.begin({ path: 'huge.img', type: 'file', mode: 0o600, uid: 0, gid: 0, size, atime: ts, mtime: ts, ctime: ts, sparse: [{ offset: size - 4096n, length: 4096n }] })
  await w.data(Buffer.alloc(4096, 0x41))
  await w.finish()
  sink.close()
  t.ok(fs.statSync(tape).size < 20_000, 'the stream holds the data region only')
  const ls = execFileSync('tar', ['-tvf', tape], { encoding: 'utf8' })
  t.match(ls, /10737418240 .* huge\.img/, 'tar lists the 10 GiB size')
  execFileSync('tar', ['-xf', tape, '-C', path.join(dir, 'out')])
  const st = fs.statSync(path.join(dir, 'out/huge.img'))
  t.equal(BigInt(st.size), size, 'extracted at its full size')
  const fd = fs.openSync(path.join(dir, 'out/huge.img'), 'r')
  const tail = Buffer.alloc(4096)
  fs.readSync(fd, tail, 0, 4096, Number(size - 4096n))
  fs.closeSync(fd)
  t.ok(tail.equals(Buffer.alloc(4096, 0x41)), 'the data region landed at its offset')

  // A dense member over 8 GiB needs the pax size record: the header is what is checked here.
  const dense = fileSink(path.join(dir, 'dense.tar'))
  const w2 = new TarWriter(dense)
  await w2.begin({ path: 'dense', type: 'file', mode: 0o600, uid: 0, gid: 0, size, atime: ts, mtime: ts, ctime: ts })
  await w2.finish() // flushes the headers (the body is left out on purpose)
  dense.close()
  const head = fs.readFileSync(path.join(dir, 'dense.tar'))
  t.match(head.subarray(512, 1024).toString('latin1'), /\d+ size=10737418240\n/, 'the pax header carries size=10737418240')
})

t.test('our reader restores GNU tar pax output, sparse included', async (t) => {
  const dir = t.testdir({ src: { 'a.txt': 'alpha\n', deep: { 'b.txt': 'beta\n' } }, state: {}, out: {} })
  const src = path.join(dir, 'src')
  fs.symlinkSync('a.txt', path.join(src, 'ln'))
  fs.linkSync(path.join(src, 'a.txt'), path.join(src, 'deep/hard'))
  fs.writeFileSync(path.join(src, 'n'.repeat(180)), 'long')
  const fd = fs.openSync(path.join(src, 'holes'), 'w')
  fs.writeSync(fd, Buffer.from('middle'), 0, 6, 3 * 1024 * 1024)
  fs.ftruncateSync(fd, 8 * 1024 * 1024)
  fs.closeSync(fd)
  fs.utimesSync(path.join(src, 'a.txt'), 1_600_000_000.5, 1_600_000_000.25)
  const tape = path.join(dir, 'gnu.tar')
  execFileSync('tar', ['--format=posix', '--sparse', '-cf', tape, '-C', src, '.'])
  const target = new MemoryVfs({ rootMode: 0o755 })
  const sum = await backupFormat.readBackup(fileSource(tape), 'gnu.tar', { kind: 'vfs', vfs: target, root: target.root(), owner: { uid: 0, gid: 0 } }, { overwrite: false, applyDeletions: false })
  t.same(sum.skipped, [], 'nothing skipped')
  const host = new LocalVfs({ root: src, stateDir: path.join(dir, 'state') })
  t.teardown(() => host.close())
  const want = await snapshotTree(host)
  const got = await snapshotTree(target)
  // GNU tar stores mtime at the precision it read it; compare to the microsecond.
  const trim = (r: Record<string, { mtime: string }>): void => {
    for (const e of Object.values(r)) e.mtime = e.mtime === '' ? '' : e.mtime.replace(/(\.\d*?)(\d{0,3})$/, (_m, a: string) => a)
  }
  trim(want)
  trim(got)
  t.same(got, want, 'restored tree equals the source tar read')
})

t.test('members from before 1970 round trip with their times: GNU tar to our restore, our backup to GNU tar', async (t) => {
  // Every backend refused negative seconds: such a member restored with its data but kept the
  // restore's time and was listed as skipped.
  const dir = t.testdir({ src: { 'old.txt': 'from the sixties\n', olddir: { 'in.txt': 'x' } }, state: {}, out: {}, extracted: {} })
  const src = path.join(dir, 'src')
  // touch(1), not utimes: Node takes a negative number of seconds for "now".
  execFileSync('touch', ['-d', '1960-01-01 00:00:00.25 UTC', path.join(src, 'old.txt'), path.join(src, 'olddir')])
  const tape = path.join(dir, 'gnu.tar')
  execFileSync('tar', ['--format=posix', '-cf', tape, '-C', src, '.'])
  const want = { sec: -315_619_200, nsec: 250_000_000 }
  const host = new LocalVfs({ root: path.join(dir, 'out'), stateDir: path.join(dir, 'state') })
  t.teardown(() => host.close())
  for (const [name, target] of [['memory', new MemoryVfs({ rootMode: 0o755 })], ['local', host]] as const) {
    const sum = await backupFormat.readBackup(fileSource(tape), 'gnu.tar', { kind: 'vfs', vfs: target, root: target.root(), owner: { uid: 0, gid: 0 } }, { overwrite: false, applyDeletions: false })
    t.same(sum.skipped, [], `${name}: nothing skipped`)
    const old = await resolve(target, 'old.txt')
    t.same((await target.getattr(old)).mtime, want, `${name}: the file's mtime in 1960, to the ns`)
    t.same((await target.getattr(await resolve(target, 'olddir'))).mtime, want, `${name}: the directory's too`)
  }
  t.equal(fs.statSync(path.join(dir, 'out', 'old.txt')).mtimeMs, -315_619_199_750, 'on the host disk as well')

  const vfs = new MemoryVfs({ rootMode: 0o755 })
  const f = await writeFile(vfs, 'old.txt', 'from the sixties\n')
  await vfs.setattr(f, { mtime: want })
  const ours = path.join(dir, 'ours.tar')
  const sink = fileSink(ours)
  await backupFormat.writeBackup({ vfs, root: vfs.root(), live: false, name: '/x' }, sink, { level: 0, base: null })
  sink.close()
  execFileSync('tar', ['-xf', ours, '-C', path.join(dir, 'extracted')])
  t.equal(fs.statSync(path.join(dir, 'extracted', 'old.txt')).mtimeMs, -315_619_199_750, 'GNU tar extracts our member with its 1960 mtime')
})
