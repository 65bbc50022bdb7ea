import t from 'tap'
import { createHash } from 'node:crypto'
import { connectTcp, listenTcp, localDataPort } from '../../../server/ndmp/mover/connection.ts'
import type { DataEndpoint } from '../../../server/ndmp/mover/connection.ts'
import { Mover } from '../../../server/ndmp/mover/mover.ts'
import type { MoverTape } from '../../../server/ndmp/mover/mover.ts'
import { HaltReason, MoverMode, MoverState, PauseReason, WINDOW_INFINITE } from '../../../server/ndmp/mover/mover-types.ts'
import { TapeDrive } from '../../../server/ndmp/tape/drive.ts'
import { TapeLibrary } from '../../../server/ndmp/tape/library.ts'
import { FRAME_SIZE, HEADER_SIZE } from '../../../server/ndmp/tape/format.ts'
import { readFile, writeFile } from 'node:fs/promises'

const seed = Number(process.env.SEED ?? Date.now() % 100000)
t.comment(`seed ${seed}`)

function stream(n: number): Buffer {
  const b = Buffer.alloc(n)
  let x = seed
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31
    b[i] = x >>> 16
  }
  return b
}

interface Events {
  log: string[]
  next: () => Promise<string>
}

function harness(tape: () => MoverTape | null): { mover: Mover; ev: Events } {
  const log: string[] = []
  const waiters: Array<(s: string) => void> = []
  const push = (s: string): void => {
    log.push(s)
    waiters.shift()?.(s)
  }
  const mover = new Mover(tape, {
    paused: (reason, seek, detail) => {
      push(detail === undefined ? `paused ${reason} ${seek}` : `paused ${reason} ${seek} ${detail}`)
    },
    halted: (reason) => {
      push(`halted ${reason}`)
    },
  })
  let seen = 0
  return {
    mover,
    ev: {
      log,
      next: () => {
        if (seen < log.length) return Promise.resolve(log[seen++]!)
        return new Promise((r) => {
          waiters.push((s) => {
            seen++
            r(s)
          })
        })
      },
    },
  }
}

async function readAll(ep: DataEndpoint, n: number): Promise<Buffer> {
  const parts: Buffer[] = []
  let got = 0
  while (got < n) {
    const b = await ep.read(n - got)
    if (b === null) break
    parts.push(b)
    got += b.length
  }
  return Buffer.concat(parts)
}

t.test('state rules: what each state refuses (the SDK test-mover M-IDLE / M-LISTEN series)', async (t) => {
  const dir = t.testdir({ tape: '' })
  const drive = new TapeDrive(`${dir}/tape`)
  const owner = {}
  let open = false
  const { mover, ev } = harness(() => (open ? { drive, owner } : null))
  t.equal(mover.status().state, MoverState.IDLE)
  t.throws(() => { mover.continue(); }, { code: 'ILLEGAL_STATE_ERR' })
  t.throws(() => { mover.abort(); }, { code: 'ILLEGAL_STATE_ERR' })
  t.throws(() => { mover.stop(); }, { code: 'ILLEGAL_STATE_ERR' })
  t.throws(() => { mover.close(); }, { code: 'ILLEGAL_STATE_ERR' })
  mover.setWindow(0n, 0n)
  mover.setRecordSize(10240)
  t.throws(() => { mover.setRecordSize(0); }, { code: 'ILLEGAL_ARGS_ERR' })
  const tcp = () => listenTcp({ host: '127.0.0.1' })
  t.throws(() => mover.listen(123, tcp, 'tcp'), { code: 'ILLEGAL_ARGS_ERR' })
  t.throws(() => mover.listen(MoverMode.READ, tcp, 'tcp'), { code: 'DEV_NOT_OPEN_ERR' })
  await drive.open(owner, 'read')
  open = true
  t.throws(() => mover.listen(MoverMode.READ, tcp, 'tcp'), { code: 'PERMISSION_ERR' }, 'a backup needs a writable tape')
  for (const kind of ['tcp', 'local'] as const) {
    const l = await mover.listen(MoverMode.WRITE, kind === 'tcp' ? tcp : () => localDataPort({}).listen(), kind)
    t.equal(mover.status().state, MoverState.LISTEN)
    t.equal(l.addresses.length, kind === 'tcp' ? 1 : 0)
    t.throws(() => mover.listen(MoverMode.WRITE, tcp, 'tcp'), { code: 'ILLEGAL_STATE_ERR' })
    t.throws(() => { mover.continue(); }, { code: 'ILLEGAL_STATE_ERR' })
    t.throws(() => { mover.stop(); }, { code: 'ILLEGAL_STATE_ERR' })
    t.throws(() => { mover.setWindow(0n, 0n); }, { code: 'ILLEGAL_STATE_ERR' }, 'v4: no window in LISTEN')
    mover.setWindow(0n, 0n, true)
    t.throws(() => { mover.setRecordSize(512); }, { code: 'ILLEGAL_STATE_ERR' })
    mover.abort()
    t.equal(await ev.next(), `halted ${HaltReason.ABORTED}`)
    t.equal(mover.status().state, MoverState.HALTED)
    t.equal(mover.status().haltReason, HaltReason.ABORTED)
    t.equal(mover.status().pauseReason, PauseReason.NA)
    if (kind === 'tcp') await t.rejects(connectTcp(l.addresses, { timeoutMs: 500 }), { code: 'DATA_CONN_REFUSED' }, 'the abort closed the listener')
    mover.stop()
    t.equal(mover.status().state, MoverState.IDLE)
  }
  await drive.close(owner)
})

t.test('backup over TCP across two tapes: EOM pauses, the DMA changes tape, the stream is whole', async (t) => {
  const lib = new TapeLibrary(t.testdir({}))
  await lib.create('A', { capacity: 300_000, earlyWarning: 50_000 })
  await lib.create('B', { capacity: 10_000_000 })
  const owner = {}
  let drive = new TapeDrive(lib.pathOf('A'))
  await drive.open(owner, 'rdwr')
  const { mover, ev } = harness(() => ({ drive, owner }))
  mover.setRecordSize(10000)
  mover.setWindow(0n, WINDOW_INFINITE)
  const l = await mover.listen(MoverMode.READ, () => listenTcp({ host: '127.0.0.1' }), 'tcp')
  const data = connectTcp(l.addresses)
  const image = stream(1_234_567)
  const sending = (async () => {
    const ep = await data
    for (let i = 0; i < image.length; i += 7777) await ep.write(image.subarray(i, i + 7777))
    await ep.end()
  })()
  const p = await ev.next()
  t.match(p, new RegExp(`^paused ${PauseReason.EOM} \\d+$`))
  const firstPart = mover.status().seekPosition
  t.ok(firstPart > 0n && firstPart % 10000n === 0n, `tape A took ${firstPart} bytes, whole records`)
  // The DMA: filemark on A, close, open B, window from where A stopped, continue.
  await drive.mtio(owner, 'EOF', 1)
  await drive.close(owner)
  drive = new TapeDrive(lib.pathOf('B'))
  await drive.open(owner, 'rdwr')
  mover.setWindow(firstPart, WINDOW_INFINITE)
  mover.continue()
  t.equal(await ev.next(), `halted ${HaltReason.CONNECT_CLOSED}`)
  await sending
  t.equal(mover.status().bytesMoved, BigInt(image.length))
  t.equal(mover.status().recordNum, Math.ceil(image.length / 10000))
  await drive.mtio(owner, 'EOF', 1)
  await drive.close(owner)
  // Read both tapes back record by record.
  const parts: Buffer[] = []
  for (const label of ['A', 'B']) {
    const d = new TapeDrive(lib.pathOf(label))
    await d.open(owner, 'read')
    for (;;) {
      try {
        parts.push(await d.read(owner, 10000))
      } catch (err) {
        t.equal((err as { code: string }).code, 'EOF_ERR')
        break
      }
    }
    await d.close(owner)
  }
  const back = Buffer.concat(parts)
  t.equal(back.length, image.length)
  t.equal(createHash('sha256').update(back).digest('hex'), createHash('sha256').update(image).digest('hex'))
  mover.stop()
})

t.test('restore over LOCAL with direct access: MOVER_READ seeks without reading from the start', async (t) => {
  const dir = t.testdir({ tape: '' })
  const owner = {}
  const drive = new TapeDrive(`${dir}/tape`)
  await drive.open(owner, 'rdwr')
  // File 0: a label-ish record; file 1: the image in 4096-byte records.
  await drive.write(owner, Buffer.from('LABEL'))
  await drive.mtio(owner, 'EOF', 1)
  const image = stream(500_000)
  for (let i = 0; i < image.length; i += 4096) await drive.write(owner, image.subarray(i, i + 4096))
  await drive.mtio(owner, 'EOF', 1)
  await drive.mtio(owner, 'REW', 1)
  await drive.mtio(owner, 'FSF', 1)
  const session = {}
  const { mover, ev } = harness(() => ({ drive, owner }))
  mover.setRecordSize(4096)
  mover.setWindow(0n, WINDOW_INFINITE)
  await mover.listen(MoverMode.WRITE, () => localDataPort(session).listen(), 'local')
  const ep = localDataPort(session).connect()
  await new Promise((r) => setImmediate(r))
  t.equal(mover.status().state, MoverState.ACTIVE, 'the peer connected: ACTIVE')
  t.throws(() => { mover.read(0n, 0n); }, { code: 'ILLEGAL_ARGS_ERR' })
  // A file in the middle, then one near the start (a backward seek), then to the end.
  mover.read(300_001n, 20_000n)
  t.throws(() => { mover.read(0n, 1n); }, { code: 'READ_IN_PROGRESS_ERR' })
  t.ok((await readAll(ep, 20_000)).equals(image.subarray(300_001, 320_001)))
  t.equal(mover.status().recordNum, 6, 'only the 6 records holding the range were read')
  mover.read(5000n, 100n)
  t.ok((await readAll(ep, 100)).equals(image.subarray(5000, 5100)))
  mover.read(499_000n, 5000n)
  t.ok((await readAll(ep, 1000)).equals(image.subarray(499_000)))
  t.equal(await ev.next(), `paused ${PauseReason.EOF} 500000`, 'the filemark after the image pauses EOF')
  t.equal(mover.status().bytesLeftToRead, 4000n)
  mover.close()
  t.equal(await ev.next(), `halted ${HaltReason.CONNECT_CLOSED}`)
  t.equal(await ep.read(10), null, 'the data side sees end of stream')
  mover.stop()
  // A window that does not hold the offset: SEEK pause; the DMA sets the window and continues.
  const s2 = {}
  mover.setWindow(0n, 100_000n)
  await drive.mtio(owner, 'REW', 1)
  await drive.mtio(owner, 'FSF', 1)
  await mover.listen(MoverMode.WRITE, () => localDataPort(s2).listen(), 'local')
  const ep2 = localDataPort(s2).connect()
  await new Promise((r) => setImmediate(r))
  mover.read(200_000n, 10n)
  t.equal(await ev.next(), `paused ${PauseReason.SEEK} 200000`)
  await drive.mtio(owner, 'FSR', 40)
  mover.setWindow(163_840n, WINDOW_INFINITE)
  mover.continue()
  const got = await readAll(ep2, 10)
  t.ok(got.equals(image.subarray(200_000, 200_010)), 'after the SEEK pause the bytes asked for come')
  ep2.close()
  t.equal(await ev.next(), `halted ${HaltReason.CONNECT_CLOSED}`, 'a restore peer that goes away halts the mover')
  mover.stop()
  await drive.close(owner)
})

t.test('window end pauses EOW; abort while paused halts ABORTED and closes the connection', async (t) => {
  const dir = t.testdir({ tape: '' })
  const owner = {}
  const drive = new TapeDrive(`${dir}/tape`)
  await drive.open(owner, 'rdwr')
  const { mover, ev } = harness(() => ({ drive, owner }))
  mover.setRecordSize(1000)
  mover.setWindow(0n, 5000n)
  const session = {}
  await mover.listen(MoverMode.READ, () => localDataPort(session).listen(), 'local')
  const ep = localDataPort(session).connect()
  const writing = ep.write(stream(2_500_000)).then(() => ep.end())
  t.equal(await ev.next(), `paused ${PauseReason.EOW} 5000`)
  t.equal(drive.status(owner).blockNo, 5)
  mover.abort()
  t.equal(await ev.next(), `halted ${HaltReason.ABORTED}`)
  await t.rejects(writing, { code: 'DATA_CONN_CLOSED' })
  t.throws(() => { mover.continue(); }, { code: 'ILLEGAL_STATE_ERR' })
  mover.stop()
  t.equal(mover.status().bytesMoved, 0n, 'STOP resets the counters')
  await drive.close(owner)
})

t.test('a damaged tape in a restore: what precedes the damage arrives, then MEDIA_ERROR naming file and offset', async (t) => {
  const dir = t.testdir({ tape: '' })
  const path = `${dir}/tape`
  const owner = {}
  const drive = new TapeDrive(path)
  await drive.open(owner, 'rdwr')
  const image = stream(10 * 1000)
  for (let i = 0; i < image.length; i += 1000) await drive.write(owner, image.subarray(i, i + 1000))
  await drive.close(owner)
  const bytes = await readFile(path)
  const bad = HEADER_SIZE + 3 * (FRAME_SIZE + 1000)
  bytes[bad + FRAME_SIZE + 5]! ^= 0x55
  await writeFile(path, bytes)
  await drive.open(owner, 'read')
  const { mover, ev } = harness(() => ({ drive, owner }))
  mover.setRecordSize(1000)
  const session = {}
  await mover.listen(MoverMode.WRITE, () => localDataPort(session).listen(), 'local')
  const ep = localDataPort(session).connect()
  await new Promise((r) => setImmediate(r))
  mover.read(0n, BigInt(image.length))
  t.ok((await readAll(ep, 3000)).equals(image.subarray(0, 3000)), 'the records before the damage arrive')
  t.equal(await ev.next(), `paused ${PauseReason.MEDIA_ERROR} 3000 ${path}: at byte ${bad}: record 3 of file 0 fails its CRC (damaged tape)`)
  mover.close()
  t.equal(await ev.next(), `halted ${HaltReason.CONNECT_CLOSED}`)
  t.equal(await ep.read(10), null, 'then end of stream: the data side restores what came')
  mover.stop()
  await drive.close(owner)
})
