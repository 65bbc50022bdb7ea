/*
 * Independent clients against a local (host-directory) export: our libnfs
 * probe's conform checks (tools/nfsprobe) and Debian's libnfs-utils.
 * Bytes written through NFS must be on the host, byte-exact, and the other
 * way round.
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import { join } from 'node:path'
import { run, startServer } from '../helpers/server.ts'
import { buildProbe, checkReport, CONFORM_CHECKS, runConform } from './conform.ts'

t.test('nfsprobe conform passes every check against a local export', async (t) => {
  const bin = await buildProbe(t)
  const dir = join(t.testdir({ export: {} }), 'export')
  const s = await startServer(t, `${dir} *(rw,insecure,no_root_squash)\n`)
  const r = await runConform(bin, s.url(dir))
  t.strictSame(r.failLines, [], 'no check failed')
  t.strictSame(r.passed, [...CONFORM_CHECKS], 'every check ran and passed, in order')
  checkReport(t, r)
  t.strictSame(fs.readdirSync(dir), [], 'the probe left nothing in the exported directory')
})

t.test('nfs-cp and nfs-cat: NFS writes are byte-exact on the host, host writes byte-exact through NFS', async (t) => {
  const base = t.testdir({ export: {}, work: {} })
  const dir = join(base, 'export')
  const work = join(base, 'work')
  const s = await startServer(t, `${dir} *(rw,insecure,no_root_squash)\n`)

  // NFS → host: a 5 MiB random file (many WRITEs), a small one and an empty one.
  const big = randomBytes(5 * 1024 * 1024 + 17)
  fs.writeFileSync(join(work, 'big.bin'), big)
  fs.writeFileSync(join(work, 'small.txt'), 'hello from libnfs\n')
  fs.writeFileSync(join(work, 'empty'), '')
  for (const f of ['big.bin', 'small.txt', 'empty']) await run('nfs-cp', [join(work, f), s.url(dir, `/${f}`)])
  t.ok(fs.readFileSync(join(dir, 'big.bin')).equals(big), '5 MiB written through NFS is byte-exact on the host')
  t.equal(fs.readFileSync(join(dir, 'small.txt'), 'utf8'), 'hello from libnfs\n')
  t.equal(fs.statSync(join(dir, 'empty')).size, 0)

  // Host → NFS: files made on the host, read out by nfs-cat and nfs-cp.
  const hostBig = randomBytes(3 * 1024 * 1024 + 5)
  fs.mkdirSync(join(dir, 'host', 'deep'), { recursive: true })
  fs.writeFileSync(join(dir, 'host', 'deep', 'data.bin'), hostBig)
  fs.writeFileSync(join(dir, 'host', 'note.txt'), 'written on the host\n')
  const cat = await run('nfs-cat', [s.url(dir, '/host/note.txt')])
  t.equal(cat.stdout, 'written on the host\n')
  await run('nfs-cp', [s.url(dir, '/host/deep/data.bin'), join(work, 'back.bin')])
  t.ok(fs.readFileSync(join(work, 'back.bin')).equals(hostBig), '3 MiB written on the host reads byte-exact through NFS')
  await run('nfs-cp', [s.url(dir, '/big.bin'), join(work, 'big-back.bin')])
  t.ok(fs.readFileSync(join(work, 'big-back.bin')).equals(big), 'and the NFS-written file round-trips')

  // An overwrite in the middle from the host is seen through NFS at once.
  const fd = fs.openSync(join(dir, 'small.txt'), 'r+')
  fs.writeSync(fd, 'HELLO', 0)
  fs.closeSync(fd)
  t.equal((await run('nfs-cat', [s.url(dir, '/small.txt')])).stdout, 'HELLO from libnfs\n')
})

t.test('nfs-ls of a tree made on the host', async (t) => {
  const base = t.testdir({
    export: {
      'a.txt': 'aaa',
      sub: { 'b.bin': 'bbbbbbbbbb', inner: { 'c': '' } },
      link: t.fixture('symlink', 'a.txt'),
    },
  })
  const dir = join(base, 'export')
  fs.chmodSync(join(dir, 'a.txt'), 0o640)
  fs.chmodSync(join(dir, 'sub'), 0o750)
  const s = await startServer(t, `${dir} *(rw,insecure,no_root_squash)\n`)
  const ls = await run('nfs-ls', [s.url(dir)])
  const lines = ls.stdout.trim().split('\n').sort((x, y) => x.slice(x.lastIndexOf(' ')).localeCompare(y.slice(y.lastIndexOf(' '))))
  t.equal(lines.length, 3, 'three entries at the top')
  t.match(lines[0], /^-rw-r----- .*\s3 a\.txt$/)
  t.match(lines[1], /^l.*\slink$/)
  t.match(lines[2], /^drwxr-x--- .*\ssub$/)
  const rec = await run('nfs-ls', ['-R', s.url(dir)])
  const names = rec.stdout.trim().split('\n').map((l) => l.slice(l.lastIndexOf(' ') + 1)).sort()
  t.strictSame(names, ['a.txt', 'link', 'sub', 'sub/b.bin', 'sub/inner', 'sub/inner/c'], 'every entry of the tree, once')
  t.match(rec.stdout, /^-.*\s10 sub\/b\.bin$/m, 'b.bin with its 10 bytes')
})
