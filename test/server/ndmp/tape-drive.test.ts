import t from 'tap'
import { chmod, readFile, stat, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { TapeDrive } from '../../../server/ndmp/tape/drive.ts'
import { FRAME_SIZE, HEADER_SIZE } from '../../../server/ndmp/tape/format.ts'
import { TapeDevices, TapeLibrary, describeTape } from '../../../server/ndmp/tape/library.ts'

// The record series of the NDMP SDK's test-tape (ndma_ctst_tape.c): records per file, record size.
const SERIES: Array<[number, number]> = [[1, 512], [100, 1024], [1, 512], [100, 139], [1, 512], [99, 10240], [1, 512], [3, 32768], [1, 512]]

function fill(size: number, rec: number, file: number): Buffer {
  const b = Buffer.alloc(size)
  for (let i = 0; i < size; i++) b[i] = (i * 7 + rec * 13 + file * 31) & 0xff
  return b
}

async function blankTape(t: { testdir: (f: Record<string, string>) => string }, name = 'tape'): Promise<string> {
  const dir = t.testdir({ [name]: '' })
  return join(dir, name)
}

function pos(d: TapeDrive, o: object): [number, number] {
  const s = d.status(o)
  return [s.fileNum, s.blockNo]
}

t.test('open/close rules: one opener, modes, write protection', async (t) => {
  const path = await blankTape(t)
  const a = {}
  const b = {}
  const d = new TapeDrive(path)
  await t.rejects(d.close(a), { code: 'DEV_NOT_OPEN_ERR' })
  await t.rejects(new TapeDrive(path + '.none').open(a, 'read'), { code: 'NO_DEVICE_ERR' })
  await d.open(a, 'read')
  await t.rejects(d.open(a, 'read'), { code: 'DEVICE_OPENED_ERR' })
  await t.rejects(d.open(b, 'rdwr'), { code: 'DEVICE_BUSY_ERR' })
  t.throws(() => d.status(b), { code: 'DEV_NOT_OPEN_ERR' })
  await t.rejects(d.write(a, Buffer.alloc(1024)), { code: 'PERMISSION_ERR' })
  await t.rejects(d.mtio(a, 'EOF', 1), { code: 'PERMISSION_ERR' })
  await t.rejects(d.read(a, 1024), { code: 'EOM_ERR' }, 'a blank tape is at end of data')
  await d.close(a)
  t.equal((await stat(path)).size, 0, 'a read-mode open does not format a blank tape')
  await d.open(b, 'rdwr')
  await d.write(b, Buffer.alloc(0))
  t.equal((await stat(path)).size, HEADER_SIZE, 'a write-mode open formats it; a zero-length write is a no-op')
  await d.close(b)
  await chmod(path, 0o444)
  if (process.getuid?.() !== 0) await t.rejects(d.open(a, 'rdwr'), { code: 'WRITE_PROTECT_ERR' })
  await chmod(path, 0o644)
  await d.open(a, 'rdwr')
  await t.rejects(d.read(a, 0x80000000), { code: 'ILLEGAL_ARGS_ERR' })
  t.equal((await d.read(a, 0)).length, 0, 'a zero-length read is a no-op')
  await d.mtio(a, 'OFF', 1)
  await t.rejects(d.read(a, 10), { code: 'NO_TAPE_LOADED_ERR' }, 'after OFF the drive holds no tape')
  await d.close(a)
})

t.test('the SDK test-tape series (v4 semantics): write, read, positioning', async (t) => {
  const path = await blankTape(t)
  const o = {}
  const d = new TapeDrive(path)
  // T-BWR: EOF and EOM checks at BOT.
  await d.open(o, 'rdwr')
  t.equal(await d.mtio(o, 'BSR', 100), 100)
  t.equal(await d.mtio(o, 'BSF', 100), 100)
  t.equal(await d.mtio(o, 'EOF', 1), 0)
  t.equal(await d.mtio(o, 'BSF', 100), 99)
  t.equal(await d.mtio(o, 'FSF', 100), 99)
  await t.rejects(d.read(o, 65536), { code: 'EOM_ERR' })
  await t.rejects(d.read(o, 1024), { code: 'EOM_ERR' })
  await d.mtio(o, 'REW', 1)
  await d.write(o, Buffer.alloc(512))
  t.equal(await d.mtio(o, 'BSR', 100), 99)
  t.equal(await d.mtio(o, 'FSR', 100), 99)
  t.equal(await d.mtio(o, 'FSR', 100), 100)
  t.equal(await d.mtio(o, 'FSF', 100), 100)
  await d.close(o)
  // T-WRITE
  await d.open(o, 'rdwr')
  for (const [file, [n, size]] of SERIES.entries()) {
    for (let r = 0; r < n; r++) {
      await d.write(o, fill(size, r, file))
      if (!t.strictSame(pos(d, o), [file, r + 1], 'position after write')) return
    }
    await d.mtio(o, 'EOF', 1)
    t.strictSame(pos(d, o), [file + 1, 0])
  }
  await d.mtio(o, 'REW', 1)
  await d.close(o)
  // T-READ (v4: the read stops before the filemark; FSF passes it)
  await d.open(o, 'read')
  for (const [file, [n, size]] of SERIES.entries()) {
    for (let r = 0; r < n; r++) {
      const got = await d.read(o, size)
      if (!got.equals(fill(size, r, file))) t.fail(`file ${file} record ${r} differs`)
    }
    await t.rejects(d.read(o, size), { code: 'EOF_ERR' })
    t.strictSame(pos(d, o), [file, -1], 'block number unknown before the filemark just read')
    await d.mtio(o, 'FSF', 1)
    t.strictSame(pos(d, o), [file + 1, 0])
  }
  await t.rejects(d.read(o, 512), { code: 'EOM_ERR' })
  // T-MTIO
  for (const [file, [n, size]] of SERIES.entries()) {
    t.equal(await d.mtio(o, 'REW', 1), 0)
    t.equal(await d.mtio(o, 'FSF', file), 0)
    t.strictSame(pos(d, o), [file, 0])
    t.equal(await d.mtio(o, 'FSR', 1000000), 1000000 - n)
    t.strictSame(pos(d, o), [file, n])
    t.equal(await d.mtio(o, 'BSR', 1000000), 1000000 - n)
    t.strictSame(pos(d, o), [file, 0])
    t.equal(await d.mtio(o, 'FSR', 0), 0)
    const half = Math.floor(n / 2)
    t.equal(await d.mtio(o, 'FSR', half), 0)
    t.ok((await d.read(o, size)).equals(fill(size, half, file)))
    if (half + 1 > 1) {
      t.equal(await d.mtio(o, 'BSR', 2), 0)
      t.ok((await d.read(o, size)).equals(fill(size, half - 1, file)))
    }
  }
  // Oversize and undersize reads: one record each, the rest of a longer record is lost.
  await d.mtio(o, 'REW', 1)
  await d.mtio(o, 'FSF', 1)
  t.equal((await d.read(o, 4096)).length, 1024)
  const part = await d.read(o, 100)
  t.ok(part.equals(fill(1024, 1, 1).subarray(0, 100)))
  t.strictSame(pos(d, o), [1, 2])
  await d.close(o)
})

t.test('v3 semantics: reads and record spacing pass the filemark they meet', async (t) => {
  const path = await blankTape(t)
  const o = {}
  const d = new TapeDrive(path)
  await d.open(o, 'rdwr')
  for (let f = 0; f < 3; f++) {
    for (let r = 0; r < 4; r++) await d.write(o, fill(100, r, f))
    await d.mtio(o, 'EOF', 1)
  }
  await d.mtio(o, 'REW', 1)
  for (let r = 0; r < 4; r++) await d.read(o, 100, true)
  await t.rejects(d.read(o, 100, true), { code: 'EOF_ERR' })
  t.strictSame(pos(d, o), [1, 0])
  t.equal(await d.mtio(o, 'FSR', 1000, true), 996)
  t.strictSame(pos(d, o), [2, 0])
  t.equal(await d.mtio(o, 'BSF', 1, true), 0)
  t.strictSame(pos(d, o), [1, -1])
  t.equal(await d.mtio(o, 'BSR', 1000, true), 996)
  t.strictSame(pos(d, o), [0, -1])
  t.equal(await d.mtio(o, 'FSF', 1, true), 0)
  t.strictSame(pos(d, o), [1, 0])
  await d.close(o)
})

t.test('capacity: early warning once, then the physical end', async (t) => {
  const dir = t.testdir({})
  const lib = new TapeLibrary(dir)
  await lib.create('T1', { capacity: 10 * (FRAME_SIZE + 1000), earlyWarning: 3 * (FRAME_SIZE + 1000) })
  const d = new TapeDrive(lib.pathOf('T1'))
  const o = {}
  await d.open(o, 'rdwr')
  t.equal(d.status(o).label, 'T1')
  let written = 0
  let warnings = 0
  for (;;) {
    try {
      await d.write(o, Buffer.alloc(1000, written))
      written++
    } catch (err) {
      t.equal((err as { code: string }).code, 'EOM_ERR')
      if (++warnings === 2) break
    }
  }
  t.equal(written, 10, 'the early warning costs no data; the rest fills to capacity')
  t.equal(d.status(o).spaceRemain, 0)
  await t.rejects(d.mtio(o, 'EOF', 1), { code: 'EOM_ERR' }, 'no room even for a filemark')
  await d.mtio(o, 'BSR', 1)
  await d.mtio(o, 'EOF', 1)
  await d.close(o)
  const info = await describeTape(lib.pathOf('T1'))
  t.equal(info.full, true)
  t.equal(info.label, 'T1')
})

t.test('a damaged or truncated tape: an error naming file and offset, what precedes it readable', async (t) => {
  const path = await blankTape(t)
  const o = {}
  const d = new TapeDrive(path)
  await d.open(o, 'rdwr')
  for (let r = 0; r < 5; r++) await d.write(o, fill(1000, r, 0))
  await d.close(o)
  const size = (await stat(path)).size
  t.equal(size, HEADER_SIZE + 5 * (FRAME_SIZE + 1000) + FRAME_SIZE, 'the close after writes left a filemark')
  // Truncate into record 3.
  await truncate(path, HEADER_SIZE + 3 * (FRAME_SIZE + 1000) + 500)
  await d.open(o, 'read')
  for (let r = 0; r < 3; r++) t.ok((await d.read(o, 1000)).equals(fill(1000, r, 0)))
  const at = HEADER_SIZE + 3 * (FRAME_SIZE + 1000)
  await t.rejects(d.read(o, 1000), { code: 'IO_ERR', message: `${path}: at byte ${at}: truncated record (484 of 1000 bytes)` })
  t.match(d.status(o).damage, /truncated record/)
  await d.close(o)
  // Flip a data byte of record 1: its CRC fails, the others read.
  const bytes = await readFile(path)
  bytes[HEADER_SIZE + FRAME_SIZE + 1000 + FRAME_SIZE + 10]! ^= 0xff
  await writeFile(path, bytes)
  await d.open(o, 'rdwr')
  await d.read(o, 1000)
  await t.rejects(d.read(o, 1000), { code: 'IO_ERR', message: `${path}: at byte ${HEADER_SIZE + FRAME_SIZE + 1000}: record 1 of file 0 fails its CRC (damaged tape)` })
  await d.mtio(o, 'FSR', 1)
  t.ok((await d.read(o, 1000)).equals(fill(1000, 2, 0)))
  // Overwriting at the damage repairs the tape (a write erases what follows).
  await d.write(o, Buffer.alloc(10))
  t.equal(d.status(o).damage, null)
  await d.close(o)
  await writeFile(path, 'garbage that is not a tape header at all, long enough to be read as one'.repeat(3))
  await t.rejects(d.open(o, 'read'), { code: 'IO_ERR', message: `${path}: at byte 0: not a tsnfs tape file (bad magic)` })
  t.equal(d.isOpen, false)
})

t.test('reopening keeps positions: the index is rebuilt from the frames', async (t) => {
  const path = await blankTape(t)
  const o = {}
  const d = new TapeDrive(path)
  await d.open(o, 'rdwr')
  for (let f = 0; f < 50; f++) {
    for (let r = 0; r < 20; r++) await d.write(o, fill(64 + f, r, f))
    await d.mtio(o, 'EOF', 1)
  }
  await d.close(o)
  await d.open(o, 'read')
  t.equal(await d.mtio(o, 'FSF', 37), 0)
  t.equal(await d.mtio(o, 'FSR', 11), 0)
  const s = d.status(o)
  t.strictSame([s.fileNum, s.blockNo], [37, 11])
  t.ok((await d.read(o, 200)).equals(fill(64 + 37, 11, 37)))
  d.seekTo(o, s.position + 5)
  t.ok((await d.read(o, 200)).equals(fill(64 + 37, 16, 37)), 'seekTo reaches a record without reading the ones before')
  t.equal(d.recordsBetween(s.position, s.position + 9), true)
  t.equal(d.recordsBetween(s.position, s.position + 10), false, 'a filemark lies in between')
  t.throws(() => {
    d.seekTo(o, 1e9)
  }, { code: 'ILLEGAL_ARGS_ERR' })
  await d.close(o)
})

t.test('library and devices: labels, next writable tape, only configured names open', async (t) => {
  const dir = t.testdir({ lib: {}, 'single.tape': '' })
  const lib = new TapeLibrary(join(dir, 'lib'))
  await lib.create('B0002', { capacity: 2000, earlyWarning: 500 })
  await lib.create('A0001', { capacity: 1 << 20 })
  await t.rejects(lib.create('A0001'), { code: 'EEXIST' })
  await t.rejects(lib.create('../x'), RangeError)
  t.strictSame((await lib.list()).map((x) => x.label), ['A0001', 'B0002'])
  t.equal((await lib.nextWritable())?.label, 'A0001')
  t.equal((await lib.nextWritable('A0001'))?.label, 'B0002')
  t.equal(await lib.nextWritable('B0002'), null)
  await t.rejects(TapeDevices.fromPaths([join(dir, 'missing')]), /--ndmp-tape .*missing: no such file/)
  const devs = await TapeDevices.fromPaths([join(dir, 'single.tape'), join(dir, 'lib')])
  t.strictSame(await devs.names(), [join(dir, 'single.tape'), join(dir, 'lib', 'A0001'), join(dir, 'lib', 'B0002')])
  const drive = devs.resolve(join(dir, 'lib', 'A0001'))
  t.ok(drive)
  t.equal(devs.resolve(join(dir, 'lib', 'A0001.tape')), drive, 'one drive per cartridge')
  t.equal(devs.resolve('/etc/passwd'), null)
  t.equal(devs.resolve(join(dir, 'lib', '..', 'single.tape')), devs.resolve(join(dir, 'single.tape')))
  t.equal(devs.resolve(join(dir, 'lib', 'sub', 'x')), null)
  const o = {}
  await drive!.open(o, 'rdwr')
  await devs.releaseAll(o)
  t.equal(drive!.isOpen, false, 'a session that ends releases its drives')
})
