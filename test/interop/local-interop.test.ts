/*
 * Independent clients against a local (host-directory) export: nfsprobe
 * conform (built from ../shared/tools/nfsprobe) and Debian's libnfs-utils.
 * Bytes written through NFS must be on the host, byte-exact, and the other
 * way round.
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import { existsSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { run, startServer } from '../helpers/server.ts'

const source = resolve(dirname(fileURLToPath(import.meta.url)), '../../../shared/tools/nfsprobe/nfsprobe.c')

t.test('nfsprobe conform passes every check against a local export', async (t) => {
  t.ok(existsSync(source), `nfsprobe source at ${source}`)
  const tools = t.testdir({ export: {} })
  const bin = join(tools, 'nfsprobe')
  const flags = (await run('pkg-config', ['--cflags', '--libs', 'libnfs'])).stdout.trim().split(/\s+/).filter((f) => f !== '')
  await run('gcc', ['-O2', '-o', bin, source, ...flags])
  const dir = join(tools, 'export')
  const s = await startServer(t, `${dir} *(rw,insecure,no_root_squash)\n`)
  const out = await run(bin, ['conform', s.url(dir)], { maxBuffer: 16 * 1024 * 1024 }).then(
    (r) => r.stdout,
    (e: unknown) => {
      const x = e as { stdout?: string; stderr?: string; message: string }
      t.comment(`${x.message} ${x.stderr ?? ''}`)
      return x.stdout ?? ''
    },
  )
  const failed = out.split('\n').filter((l) => l.startsWith('FAIL'))
  t.strictSame(failed, [], 'no check failed')
  const summary = /^(\d+) passed, (\d+) failed$/m.exec(out)
  t.ok(summary, 'nfsprobe printed its summary')
  t.ok(Number(summary?.[1]) >= 42, `${summary?.[1] ?? 0} checks passed`)
  t.equal(summary?.[2], '0')
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
