import t from 'tap'
import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { hostname } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { probeSize } from '../../../vfs/engine/blockdev/device-geometry.ts'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import { lockPathFor } from '../../../vfs/engine/blockdev/image-lock.ts'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
const MiB = 1024 * 1024

t.test('create makes a sparse image of the size asked, and refuses bad sizes and existing paths', async (t) => {
  const dir = t.testdir()
  const path = join(dir, 'a.img')
  const img = await ImageFile.create(path, 64 * MiB)
  t.teardown(() => img.close())
  t.equal(img.size, 64 * MiB)
  t.equal(img.kind, 'file')
  t.equal(img.sectorSize, 512)
  t.equal(img.readOnly, false)
  const st = statSync(path)
  t.equal(st.size, 64 * MiB)
  t.ok(st.blocks * 512 < MiB, `sparse: ${st.blocks} blocks allocated`)
  await t.rejects(ImageFile.create(join(dir, 'b.img'), 1000), { code: 'BLOCKDEV_SIZE', message: 'BLOCKDEV_SIZE: image size 1000 is not a positive multiple of 512' })
  await t.rejects(ImageFile.create(join(dir, 'b.img'), 0), { code: 'BLOCKDEV_SIZE' })
  await t.rejects(ImageFile.create(path, MiB, { overwrite: true }), { code: 'BLOCKDEV_LOCKED' }, 'never truncates an image that is open')
  t.equal(statSync(path).size, 64 * MiB)
  await img.close()
  writeFileSync(join(dir, 'c.img'), 'x')
  await t.rejects(ImageFile.create(join(dir, 'c.img'), MiB), { code: 'EEXIST' })
  t.notOk(existsSync(lockPathFor(join(dir, 'c.img'))), 'a failed create leaves no lock behind')
  const over = await ImageFile.create(join(dir, 'c.img'), MiB, { overwrite: true })
  t.equal(statSync(join(dir, 'c.img')).size, MiB)
  await over.close()
  mkdirSync(join(dir, 'd'))
  await t.rejects(ImageFile.create(join(dir, 'd'), MiB, { overwrite: true }), { code: 'BLOCKDEV_NOT_DEVICE' })
  await t.rejects(ImageFile.open(join(dir, 'd')), { code: 'BLOCKDEV_NOT_DEVICE', message: `BLOCKDEV_NOT_DEVICE: ${join(dir, 'd')} is neither a regular file nor a block device` })
  await t.rejects(ImageFile.open(join(dir, 'missing.img')), { code: 'ENOENT' })
})

t.test('positional reads and writes reach the file; flush; reopen sees them', async (t) => {
  const path = join(t.testdir(), 'rw.img')
  const img = await ImageFile.create(path, MiB)
  const data = Buffer.from(Array.from({ length: 10000 }, (_, i) => (i * 13) & 0xff))
  await Promise.all([img.write(4096, data), img.write(MiB - 3, Buffer.from('end'))])
  await img.flush()
  t.strictSame(await img.read(4096, 10000), data)
  const into = new Uint8Array(3)
  await img.readInto(MiB - 3, into)
  t.equal(Buffer.from(into).toString(), 'end')
  await img.close()
  await img.close()
  t.ok(readFileSync(path).subarray(4096, 14096).equals(data), 'the bytes are in the file')
  await t.rejects(img.read(0, 1), { code: 'BLOCKDEV_CLOSED', message: 'BLOCKDEV_CLOSED: read on a closed device' })
  await t.rejects(img.write(0, Buffer.alloc(1)), { code: 'BLOCKDEV_CLOSED' })
  await t.rejects(img.flush(), { code: 'BLOCKDEV_CLOSED' })
  const again = await ImageFile.open(path)
  t.teardown(() => again.close())
  t.strictSame(await again.read(MiB - 3, 3), Buffer.from('end'))
  await t.rejects(again.read(MiB - 2, 3), { code: 'BLOCKDEV_RANGE', message: `BLOCKDEV_RANGE: read of 3 bytes at offset ${MiB - 2} outside the device (${MiB} bytes)` })
  await t.rejects(again.write(MiB, Buffer.alloc(1)), { code: 'BLOCKDEV_RANGE' })
  await t.rejects(again.readInto(-1, new Uint8Array(1)), { code: 'BLOCKDEV_RANGE' })
  t.equal(statSync(path).size, MiB, 'a refused write never grows the file')
})

t.test('read-only opens take no lock and refuse writes', async (t) => {
  const path = join(t.testdir(), 'ro.img')
  const writer = await ImageFile.create(path, MiB)
  t.teardown(() => writer.close())
  await writer.write(0, Buffer.from('hello'))
  const reader = await ImageFile.open(path, { readOnly: true })
  t.teardown(() => reader.close())
  t.equal(reader.readOnly, true)
  t.strictSame(await reader.read(0, 5), Buffer.from('hello'))
  await t.rejects(reader.write(0, Buffer.from('x')), { code: 'BLOCKDEV_READONLY', message: 'BLOCKDEV_READONLY: write at offset 0 to a device opened read-only' })
})

t.test('a file that shrinks under us gives BLOCKDEV_SHORT_IO, not a short read', async (t) => {
  const path = join(t.testdir(), 'shrink.img')
  const img = await ImageFile.create(path, MiB)
  t.teardown(() => img.close())
  truncateSync(path, 4096)
  await t.rejects(img.read(8192, 512), { code: 'BLOCKDEV_SHORT_IO', message: `BLOCKDEV_SHORT_IO: ${path}: read at 8192 found the end before ${MiB} bytes` })
  await t.rejects(img.read(4000, 512), { code: 'BLOCKDEV_SHORT_IO' })
})

t.test('a second read-write opener is refused, in this process and in another', async (t) => {
  const path = join(t.testdir(), 'lock.img')
  const first = await ImageFile.create(path, MiB)
  await t.rejects(ImageFile.open(path), { code: 'BLOCKDEV_LOCKED', message: new RegExp(`^BLOCKDEV_LOCKED: ${path} is open read-write by pid ${process.pid} on `) })
  await first.close()
  t.notOk(existsSync(lockPathFor(path)), 'close removes the lock')

  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/helpers/image-holder.ts'), path], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => child.kill('SIGKILL'))
  const [line] = (await once(child.stdout, 'data')) as [Buffer]
  t.equal(line.toString(), `held ${MiB}\n`)
  await t.rejects(ImageFile.open(path), { code: 'BLOCKDEV_LOCKED', message: new RegExp(`by pid ${child.pid} on `) })
  await t.rejects(ImageFile.create(path, MiB, { overwrite: true }), { code: 'BLOCKDEV_LOCKED' })
  const reader = await ImageFile.open(path, { readOnly: true })
  await reader.close()
  // SIGKILL: the holder cannot remove its lock; the next opener finds its pid gone and takes over.
  child.kill('SIGKILL')
  await once(child, 'exit')
  t.ok(existsSync(lockPathFor(path)), 'the killed holder left its lock')
  const after = await ImageFile.open(path)
  t.match(readFileSync(lockPathFor(path), 'utf8'), new RegExp(`^tsnfs-lock 1 pid=${process.pid} `))
  await after.close()
  t.strictSame(readdirSync(dirname(path)).sort(), ['lock.img'], 'no temporary lock files left')
})

t.test('stale and foreign locks', async (t) => {
  const dir = t.testdir()
  const path = join(dir, 's.img')
  writeFileSync(path, Buffer.alloc(4096))
  const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
  const myStart = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]?.split(' ')[19] ?? ''
  const tryWith = async (content: string): Promise<unknown> => {
    writeFileSync(lockPathFor(path), content)
    try {
      const img = await ImageFile.open(path)
      await img.close()
      return 'opened'
    } catch (err) {
      return err
    }
  }
  const line = (pid: number, start: string, b: string, host: string): string => `tsnfs-lock 1 pid=${pid} start=${start} boot=${b} host=${host} nonce=00\n`
  t.equal(await tryWith(line(process.pid, '1', boot, hostname())), 'opened', 'a reused pid (other start time) is stale')
  t.equal(await tryWith(line(process.pid, myStart, '00000000-0000-0000-0000-000000000000', hostname())), 'opened', 'another boot is stale')
  t.equal(await tryWith(line(2 ** 22 + 1, '5', boot, hostname())), 'opened', 'a pid that does not exist is stale')
  t.match(await tryWith(line(process.pid, myStart, boot, hostname())), { code: 'BLOCKDEV_LOCKED' }, 'our own live lock holds')
  t.match(await tryWith(line(1, '1', boot, 'elsewhere')), { code: 'BLOCKDEV_LOCKED', message: /by pid 1 on elsewhere/ }, 'another host is never judged stale')
  t.match(await tryWith('garbage'), { code: 'BLOCKDEV_LOCKED', message: `BLOCKDEV_LOCKED: ${path} is open read-write by an unreadable lock file (lock file ${lockPathFor(path)})` })
})

t.test('openers racing for one stale lock: exactly one wins', async (t) => {
  const path = join(t.testdir(), 'race.img')
  writeFileSync(path, Buffer.alloc(4096))
  for (let round = 0; round < 5; round++) {
    writeFileSync(lockPathFor(path), `tsnfs-lock 1 pid=${2 ** 22 + 3} start=7 boot= host=${hostname()} nonce=00\n`)
    const results = await Promise.allSettled(Array.from({ length: 6 }, () => ImageFile.open(path)))
    const won = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))
    const lost = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as { code?: string }).code] : []))
    t.equal(won.length, 1, `round ${round}: one winner`)
    t.strictSame(lost, Array.from({ length: 5 }, () => 'BLOCKDEV_LOCKED'), `round ${round}: the others are refused`)
    for (const img of won) await img.close()
    t.strictSame(readdirSync(dirname(path)), ['race.img'], `round ${round}: nothing left behind`)
  }
})

t.test('a loop block device: size from sysfs, O_EXCL against a second opener (needs root and a loop device)', async (t) => {
  let loop: string
  const dir = t.testdir()
  const file = join(dir, 'backing.img')
  writeFileSync(file, Buffer.alloc(0))
  truncateSync(file, 3 * MiB + 512 * 3)
  try {
    loop = execFileSync('losetup', ['-f', '--show', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim()
  } catch (err) {
    t.comment(`skipped: no loop device here (${(err as Error).message.split('\n')[0]})`)
    t.pass('skipped')
    return
  }
  t.teardown(() => execFileSync('losetup', ['-d', loop]))
  const dev = await ImageFile.open(loop)
  t.equal(dev.kind, 'block-device')
  t.equal(dev.size, 3 * MiB + 1536)
  t.equal(dev.sectorSize, 512)
  await t.rejects(ImageFile.open(loop), { code: 'BLOCKDEV_LOCKED', message: `BLOCKDEV_LOCKED: ${loop} is mounted or open exclusively elsewhere` })
  await dev.write(3 * MiB, Buffer.from('via the loop'))
  await dev.flush()
  await t.rejects(dev.write(dev.size - 1, Buffer.alloc(2)), { code: 'BLOCKDEV_RANGE' })
  const ro = await ImageFile.open(loop, { readOnly: true })
  t.strictSame(await ro.read(3 * MiB, 12), Buffer.from('via the loop'))
  await ro.close()
  await dev.close()
  t.equal(readFileSync(file).subarray(3 * MiB, 3 * MiB + 12).toString(), 'via the loop')
  // The fallback where sysfs is missing: probing reads finds the same end.
  const fh = await open(loop, 'r')
  t.equal(await probeSize(fh), 3 * MiB + 1536)
  await fh.close()
})

t.test('probeSize finds the end of a file in 512-byte steps', async (t) => {
  const path = join(t.testdir(), 'p.img')
  for (const size of [0, 512, 1536, 4096 * 5 + 512]) {
    writeFileSync(path, Buffer.alloc(size, 1))
    const fh = await open(path, 'r')
    t.equal(await probeSize(fh), size, `${size} bytes`)
    await fh.close()
  }
})
