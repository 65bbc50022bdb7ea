/*
 * The client against an independent server: NFS-Ganesha (FSAL_VFS) on
 * loopback, exporting a temporary directory. Every result is checked
 * against what Ganesha did to the host directory (node:fs), so neither
 * side is judged by our own code alone. Ganesha failing to start fails
 * this file with the reason (see test/helpers/ganesha.ts); it never skips.
 */
import t from 'tap'
import type { Test } from 'tap'
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { fileURLToPath } from 'node:url'
import { NfsClient } from '../../client/nfs-client.ts'
import { startGanesha } from '../helpers/ganesha.ts'
import { run } from '../helpers/server.ts'
import { random, MIB, KIB } from './file-helpers.ts'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const cli = join(root, 'dist/cli/main.js')

const base = t.testdir({ export: {}, state: {} })
const exportDir = join(base, 'export')
// The root test's testdir is made lazily; Ganesha needs the directory at start.
mkdirSync(exportDir, { recursive: true })
const g = await startGanesha(t, exportDir, join(base, 'state'))
t.comment(`ganesha pid ${String(g.pid)}: ${g.url()}`)

async function mount(t: Test, query = ''): Promise<NfsClient> {
  const c = await NfsClient.mount(g.url('', query))
  t.teardown(() => c.umount())
  return c
}

const host = (p: string): string => join(exportDir, p)

t.test('mount: export list, FSINFO, root attributes', async t => {
  const list = await NfsClient.exportList(g.url())
  t.ok(list.some(e => e.dir === g.exportPath), `EXPORT lists ${g.exportPath}`)
  const c = await mount(t)
  t.equal(c.exportPath, g.exportPath)
  t.ok(c.limits.rsize > 0 && c.limits.wsize > 0 && c.limits.fsinfo.wtmax >= c.limits.wsize, 'FSINFO sizes')
  const st = await c.stat('/')
  t.ok(st.isDirectory())
  t.equal(st.fileid, BigInt(statSync(exportDir).ino), 'fileid is the host inode')
})

t.test('metadata: mkdir, readdir, stat, rename, symlink, readlink, link, chmod, utimes, truncate, unlink, rmdir', async t => {
  const c = await mount(t)
  await c.mkdir('/m', 0o750)
  await c.mkdir('/m/a/b/c', { recursive: true })
  t.ok(statSync(host('m/a/b/c')).isDirectory(), 'mkdir -p made the host tree')
  t.equal(statSync(host('m')).mode & 0o7777, 0o750, 'mkdir mode')
  await t.rejects(c.mkdir('/m'), { code: 'NFS3ERR_EXIST', errno: 'EEXIST' })

  writeFileSync(host('m/host-file'), 'from the host\n')
  t.same((await c.readdir('/m')).sort(), ['a', 'host-file'], 'READDIR sees what the host made')
  const plus = (await c.readdirPlus('/m')).sort((x, y) => x.name.localeCompare(y.name))
  t.same(plus.map(e => e.name), ['a', 'host-file'])
  t.equal(plus[1]?.stats?.size, 14n, 'READDIRPLUS attributes')
  t.equal(plus[1]?.fileid, BigInt(statSync(host('m/host-file')).ino), 'READDIRPLUS fileid')

  const st = await c.stat('/m/host-file')
  const hs = statSync(host('m/host-file'))
  t.equal(st.size, BigInt(hs.size))
  t.equal(st.nlink, 1)
  t.equal(st.mode, hs.mode & 0o7777)
  t.equal(st.uid, hs.uid)
  t.equal(st.mtime.getTime(), Math.floor(hs.mtimeMs), 'mtime as the host has it')

  await c.rename('/m/host-file', '/m/a/moved')
  t.notOk(existsSync(host('m/host-file')))
  t.equal(readFileSync(host('m/a/moved'), 'utf8'), 'from the host\n', 'rename moved the host file')
  await t.rejects(c.stat('/m/host-file'), { code: 'NFS3ERR_NOENT', errno: 'ENOENT' })

  await c.symlink('a/moved', '/m/sl')
  t.equal(readlinkSync(host('m/sl')), 'a/moved', 'symlink text on the host')
  t.equal(await c.readlink('/m/sl'), 'a/moved')
  t.ok((await c.lstat('/m/sl')).isSymbolicLink())
  t.equal((await c.stat('/m/sl')).size, 14n, 'stat follows the link')

  await c.link('/m/a/moved', '/m/hard')
  t.equal(statSync(host('m/hard')).ino, statSync(host('m/a/moved')).ino, 'hard link shares the inode')
  t.equal((await c.stat('/m/hard')).nlink, 2)

  await c.chmod('/m/hard', 0o604)
  t.equal(statSync(host('m/a/moved')).mode & 0o7777, 0o604, 'chmod on the host')
  const when = new Date('2001-02-03T04:05:06.789Z')
  await c.utimes('/m/hard', when, when)
  t.equal(statSync(host('m/hard')).mtimeMs, when.getTime(), 'utimes on the host')
  t.equal((await c.stat('/m/hard')).mtime.getTime(), when.getTime())

  await c.truncate('/m/hard', 4)
  t.equal(readFileSync(host('m/hard'), 'utf8'), 'from', 'truncate on the host')
  t.equal((await c.stat('/m/a/moved')).size, 4n)

  await t.rejects(c.rmdir('/m/a'), { code: 'NFS3ERR_NOTEMPTY', errno: 'ENOTEMPTY' })
  await t.rejects(c.unlink('/m/a'), { code: 'NFS3ERR_ISDIR', errno: 'EISDIR' })
  await c.unlink('/m/hard')
  t.notOk(existsSync(host('m/hard')))
  await c.rm('/m', { recursive: true })
  t.notOk(existsSync(host('m')), 'rm -r removed the tree')
  await t.rejects(c.rmdir('/m'), { code: 'NFS3ERR_NOENT' })
  const fs = await c.statfs()
  t.ok(fs.tbytes > 0n && fs.tbytes >= fs.fbytes && fs.fbytes >= fs.abytes, 'FSSTAT numbers')
})

t.test('open/write/read/close round trips of several sizes, byte-exact on the host', async t => {
  const c = await mount(t)
  for (const n of [0, 1, 4095, 4096, 64 * KIB + 1, MIB + 7, 16 * MIB]) {
    const data = random(n)
    const f = await c.open(`/rt${String(n)}`, 'w', 0o640)
    for (let off = 0; off < n; off += 3 * MIB + 5) await f.write(data.subarray(off, Math.min(off + 3 * MIB + 5, n)))
    await f.close()
    const onHost = readFileSync(host(`rt${String(n)}`))
    t.ok(onHost.equals(data), `${String(n)} bytes written byte-exact`)
    t.equal(statSync(host(`rt${String(n)}`)).mode & 0o777, 0o640)
    const r = await c.open(`/rt${String(n)}`)
    t.ok((await r.read(n + 100, 0)).equals(data), `${String(n)} bytes read back`)
    await r.close()
  }
  writeFileSync(host('from-host'), random(3 * MIB + 1))
  t.ok((await c.readFile('/from-host')).equals(readFileSync(host('from-host'))), 'a file written by the host reads byte-exact')
})

t.test('positions, append, truncate of an open file, fsync', async t => {
  const c = await mount(t)
  const f = await c.open('/pos', 'w+')
  await f.write(Buffer.from('hello world'))
  await f.write(Buffer.from('W'), 6)
  await f.fsync()
  t.equal(readFileSync(host('pos'), 'utf8'), 'hello World', 'fsync put the data on the host')
  t.equal((await f.read(5, 6)).toString(), 'World')
  await f.truncate(5)
  await f.close()
  t.equal(readFileSync(host('pos'), 'utf8'), 'hello')
  const a = await c.open('/pos', 'a')
  await a.write(Buffer.from('!'))
  await a.close()
  t.equal(readFileSync(host('pos'), 'utf8'), 'hello!', 'append')
  await t.rejects(c.open('/pos', 'wx'), { code: 'NFS3ERR_EXIST', errno: 'EEXIST' })
  await t.rejects(c.open('/absent'), { code: 'NFS3ERR_NOENT', errno: 'ENOENT' })
})

t.test('readFile/writeFile and streams', async t => {
  const c = await mount(t)
  const data = random(5 * MIB + 3)
  await c.writeFile('/wf', data, { mode: 0o600 })
  t.ok(readFileSync(host('wf')).equals(data), 'writeFile byte-exact on the host')
  t.equal(statSync(host('wf')).mode & 0o777, 0o600)
  t.ok((await c.readFile('/wf')).equals(data), 'readFile')

  const chunks: Buffer[] = []
  await pipeline(
    c.createReadStream('/wf', { start: 1000, end: 2 * MIB }),
    new Writable({
      write(chunk: Buffer, _e, cb) {
        chunks.push(chunk)
        cb()
      },
    }),
  )
  t.ok(Buffer.concat(chunks).equals(data.subarray(1000, 2 * MIB + 1)), 'read stream range (end inclusive)')

  await pipeline(Readable.from([data.subarray(0, MIB), data.subarray(MIB)]), c.createWriteStream('/ws'))
  t.ok(readFileSync(host('ws')).equals(data), 'write stream byte-exact on the host')
  await pipeline(Readable.from([Buffer.from('tail')]), c.createWriteStream('/ws', { flags: 'a' }))
  t.ok(readFileSync(host('ws')).equals(Buffer.concat([data, Buffer.from('tail')])), 'append stream')
})

t.test('tsnfs ls -l and cp against Ganesha', async t => {
  if (!existsSync(cli)) await run('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root })
  mkdirSync(host('cli/sub'), { recursive: true })
  writeFileSync(host('cli/file'), 'x'.repeat(1234))
  const ls = await run(process.execPath, [cli, 'ls', '-l', g.url('/cli')], { env: { ...process.env, TZ: 'UTC' } })
  const lines = ls.stdout.trimEnd().split('\n')
  t.equal(lines.length, 2)
  t.match(lines[0], /^-rw-r--r-- 1 0 +0 +1234 \w{3} [ \d]\d [ \d]\d:\d\d file$/)
  t.match(lines[1], /^drwxr-xr-x 2 0 +0 +\d+ .* sub$/)
  const back = join(base, 'back')
  await run(process.execPath, [cli, 'cp', '-r', g.url('/cli'), back])
  t.same(readdirSync(back).sort(), ['file', 'sub'])
  t.equal(readFileSync(join(back, 'file'), 'utf8'), 'x'.repeat(1234), 'cp from Ganesha')
  t.ok(lstatSync(join(back, 'sub')).isDirectory())
})
