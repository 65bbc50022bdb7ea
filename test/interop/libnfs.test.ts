/*
 * An independent client judges the server: Debian's libnfs-utils (nfs-ls,
 * nfs-cp, nfs-cat), written by people outside the team, against a server on
 * port 0. URLs carry nfsport/mountport, so no portmapper is involved.
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { run, startServer } from '../helpers/server.ts'

t.test('nfs-ls, nfs-cp and nfs-cat read and write through the server', async (t) => {
  const s = await startServer(t)
  const dir = t.testdir({ 'small.txt': 'hello from libnfs\n' })
  const big = randomBytes(5 * 1024 * 1024)
  await writeFile(join(dir, 'big.bin'), big)

  const empty = await run('nfs-ls', [s.url('/export')])
  t.equal(empty.stdout, '', 'a fresh export lists nothing')

  await run('nfs-cp', [join(dir, 'small.txt'), s.url('/export', '/small.txt')])
  await run('nfs-cp', [join(dir, 'big.bin'), s.url('/export', '/big.bin')])

  const ls = await run('nfs-ls', [s.url('/export')])
  const lines = ls.stdout.trim().split('\n').sort((a, b) => (a.endsWith('big.bin') ? -1 : b.endsWith('big.bin') ? 1 : 0))
  t.equal(lines.length, 2)
  t.match(lines[0], /^-rw.*\s5242880 big\.bin$/)
  t.match(lines[1], /^-rw.*\s18 small\.txt$/)

  const cat = await run('nfs-cat', [s.url('/export', '/small.txt')])
  t.equal(cat.stdout, 'hello from libnfs\n')

  await run('nfs-cp', [s.url('/export', '/big.bin'), join(dir, 'back.bin')])
  const back = await readFile(join(dir, 'back.bin'))
  t.equal(back.length, big.length)
  t.ok(back.equals(big), '5 MiB copied in and out byte-exact')
})

t.test('libnfs sees the server errors as errno', async (t) => {
  const s = await startServer(t)
  await t.rejects(run('nfs-cat', [s.url('/export', '/missing')]), 'a missing file fails')
  await t.rejects(run('nfs-ls', [s.url('/nope')]), 'an unknown export fails to mount')
})

t.test('a read-only export refuses libnfs writes', async (t) => {
  const s = await startServer(t, '/ro *(ro,insecure,backend=memory)\n')
  const dir = t.testdir({ 'f.txt': 'x' })
  const err = await run('nfs-cp', [join(dir, 'f.txt'), s.url('/ro', '/f.txt')]).then(
    () => null,
    (e: unknown) => e as { stderr: string },
  )
  t.not(err, null, 'the copy fails')
  t.match(err?.stderr, /ROFS|Read-only/i)
})
