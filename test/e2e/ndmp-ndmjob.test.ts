/*
 * The independent judge of the NDMP DATA service: Debian's amanda-server `ndmjob` (the NDMP SDK's
 * reference DMA) drives our server over real sockets.
 *  - `-o test-data`: the SDK's DATA state-machine conformance series, no failure.
 *  - `-c` with `-o tape-tcp=`: our DATA_CONNECT to a plain TCP port (a test socket keeps the
 *    stream); GNU tar lists and extracts it; `-I` writes the file history index.
 *  - `-t`, `-x` (everything, and one chosen file through the `-J` index) from that stream.
 *  - three-way: `ndmjob -o daemon` as the tape agent (its MOVER listens, our DATA connects);
 *    the records its simulated tape holds are the stream GNU tar reads; -x of one file by direct
 *    access through that mover (our data service asks it whole records).
 * Skipped where ndmjob is not installed (CI installs amanda-server).
 */
import t from 'tap'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { promisify } from 'node:util'
import { FRAME_MAGIC, FRAME_SIZE, HEADER_SIZE, KIND_RECORD } from '../../server/ndmp/tape/format.ts'
import type { NdmpExport } from '../../server/ndmp/service-types.ts'
import { mkdirp, resolve, symlink, writeFile } from '../backup/helpers.ts'
import { serveProcess } from '../cli/cli.ts'
import { haveNdmjob, memExport as mem, NDMJOB, ndmjobDaemon, ndmjobText as ndmjob, ndmpWithTape, runNdmjob } from '../helpers/ndmjob.ts'

const run = promisify(execFile)

if (!haveNdmjob) {
  t.comment(`${NDMJOB} is not installed`)
  t.pass('skipped: no ndmjob')
} else {
  t.test('ndmjob drives our DATA service', async (t) => {
    const dir = t.testdir()
    const exp = mem('/exp')
    const dest = mem('/r')
    const files: Record<string, Buffer> = {
      'a.txt': Buffer.from('alpha\n'),
      'dir/b.bin': Buffer.alloc(300_000, 9),
      'dir/sub/c.txt': Buffer.from('gamma '.repeat(2000)),
      'dir/sub/name with space.txt': Buffer.from('spaces\n'),
    }
    await mkdirp(exp.vfs, 'dir/sub')
    for (const [p, d] of Object.entries(files)) await writeFile(exp.vfs, p, d)
    await symlink(exp.vfs, 'dir/link', '../a.txt')

    const { tape: ourTape, agent } = await ndmpWithTape(t, dir, [exp, dest], 'ourtape')

    t.test('-o test-data passes', async (t) => {
      const out = await ndmjob(['-o', 'test-data', '-D', agent])
      t.match(out, /FINAL test-data Passed -- pass=\d+ warn=0 fail=0/)
      t.match(out, /LOCAL and TCP addressing tested/)
    })

    const stream = path.join(dir, 'stream.tar')
    const index = path.join(dir, 'index')
    t.test('-c with tape-tcp: a stream GNU tar reads, an index of every name', async (t) => {
      const sink = await collector(stream)
      const out = await ndmjob(['-c', '-D', agent, '-o', `tape-tcp=127.0.0.1:${sink.port}`, '-f', '/dev/null', '-C', '/exp', '-I', index, '-e', '*.o', '-v'])
      await sink.done
      t.match(out, /Operation ended OKAY/)
      const listing = (await run('tar', ['-tvf', stream])).stdout
      for (const p of Object.keys(files)) t.match(listing, p, `tar lists ${p}`)
      t.match(listing, /dir\/link -> \.\.\/a\.txt/)
      const x = path.join(dir, 'x')
      fs.mkdirSync(x)
      await run('tar', ['-xf', stream, '-C', x])
      for (const [p, d] of Object.entries(files)) t.ok(fs.readFileSync(path.join(x, p)).equals(d), `GNU tar extracts ${p} byte for byte`)
      const ix = fs.readFileSync(index, 'utf8')
      t.match(ix, /^DHr \d+$/m, 'the root node')
      t.match(ix, /^DHd \d+ c\.txt UNIX \d+$/m)
      t.match(ix, /^DHd \d+ name%20with%20space\.txt UNIX \d+$/m, 'ndmjob escapes the space of a name we sent')
      t.match(ix, /^DHn \d+ UNIX f- m0644 u0 g0 s300000 tm\d+ @\d+$/m, 'b.bin: size and its stream offset')
      t.match(ix, /^DE FILESYSTEM=\/exp$/m)
      t.match(ix, /^DE LEVEL=0$/m)
    })

    t.test('-t lists the stream; -x restores all of it, and a chosen file through -J', async (t) => {
      const src1 = await feeder(stream)
      const toc = await ndmjob(['-t', '-D', agent, '-o', `tape-tcp=127.0.0.1:${src1.port}`, '-f', '/dev/null', '-v'])
      t.match(toc, /Operation ended OKAY/)
      t.match(toc, /DHd \d+ b\.bin UNIX \d+/)

      const src2 = await feeder(stream)
      const all = await ndmjob(['-x', '-D', agent, '-o', `tape-tcp=127.0.0.1:${src2.port}`, '-f', '/dev/null', '-C', '/r/full', '-v'])
      t.match(all, /Operation ended OKAY/)
      for (const [p, d] of Object.entries(files)) t.ok((await readAll(dest, `full/${p}`)).equals(d), `-x restored ${p} byte for byte`)

      const src3 = await feeder(stream)
      const one = await ndmjob(['-x', '-D', agent, '-o', `tape-tcp=127.0.0.1:${src3.port}`, '-f', '/dev/null', '-C', '/r/one', '-J', index, '-v', 'dir/sub/c.txt'])
      t.match(one, /LOG_FILE messages: 1 OK, 0 ERROR, total 1 of 1/)
      t.ok((await readAll(dest, 'one/dir/sub/c.txt')).equals(files['dir/sub/c.txt'] ?? Buffer.alloc(0)), 'the chosen file, byte for byte')
      await t.rejects(resolve(dest.vfs, 'one/a.txt'), { code: 'ENOENT' }, 'nothing else')
    })

    t.test('data and tape both ours (LOCAL): -c to a tape file, -t, -x all and one file', async (t) => {
      const ix = path.join(dir, 'index-local')
      const c = await ndmjob(['-c', '-D', agent, '-f', ourTape, '-C', '/exp', '-I', ix, '-v'])
      t.match(c, /Operation ended OKAY/)
      const extracted = path.join(dir, 'from-ourtape.tar')
      fs.writeFileSync(extracted, ourTapeRecords(fs.readFileSync(ourTape)))
      const listing = (await run('tar', ['-tvf', extracted])).stdout
      for (const p of Object.keys(files)) t.match(listing, p, `tar lists ${p} from our tape's records`)
      const toc = await ndmjob(['-t', '-D', agent, '-f', ourTape, '-v'])
      t.match(toc, /Operation ended OKAY/)
      t.match(toc, /DHd \d+ c\.txt UNIX \d+/)
      const all = await ndmjob(['-x', '-D', agent, '-f', ourTape, '-C', '/r/local', '-v'])
      t.match(all, /Operation ended OKAY/)
      for (const [p, d] of Object.entries(files)) t.ok((await readAll(dest, `local/${p}`)).equals(d), `restored ${p} from our tape`)
      const one = await ndmjob(['-x', '-D', agent, '-f', ourTape, '-C', '/r/local1', '-J', ix, '-v', 'dir/b.bin'])
      t.match(one, /LOG_FILE messages: 1 OK, 0 ERROR, total 1 of 1/)
      t.ok((await readAll(dest, 'local1/dir/b.bin')).equals(files['dir/b.bin'] ?? Buffer.alloc(0)))
    })

    t.test('three-way: ndmjob -o daemon as the tape agent', async (t) => {
      const daemon = await ndmjobDaemon(t)
      const tape = path.join(dir, 'simtape')
      fs.writeFileSync(tape, '')
      const out = await ndmjob(['-c', '-D', agent, '-T', daemon.agent, '-f', tape, '-C', '/exp', '-I', path.join(dir, 'index3'), '-v'])
      t.match(out, /Operation ended OKAY/)
      const extracted = path.join(dir, 'from-tape.tar')
      fs.writeFileSync(extracted, simulatorRecords(fs.readFileSync(tape)))
      const listing = (await run('tar', ['-tvf', extracted])).stdout
      for (const p of Object.keys(files)) t.match(listing, p, `tar lists ${p} from the tape agent's records`)

      // Direct access through its mover, ndmjob the DMA: our data service asks whole records
      // (that mover serves nothing else; a 512-byte read would wait for ever, bench/README.md).
      const x = await ndmjob(['-x', '-D', agent, '-T', daemon.agent, '-f', tape, '-C', '/r/dar3', '-J', path.join(dir, 'index3'), '-E', 'DIRECT=y', '-v', 'dir/sub/c.txt'], 45_000)
      t.match(x, /LOG_FILE messages: 1 OK, 0 ERROR, total 1 of 1/)
      t.ok((await readAll(dest, 'dar3/dir/sub/c.txt')).equals(files['dir/sub/c.txt'] ?? Buffer.alloc(0)), 'the chosen file, byte for byte')
      await t.rejects(resolve(dest.vfs, 'dar3/a.txt'), { code: 'ENOENT' }, 'nothing else')
      t.match(x, /direct access restore of 1 name\(s\), in whole records of 10240 bytes/)
      const read = Number(/direct access: \d+ read\(s\), (\d+) bytes/.exec(x)?.[1] ?? Infinity)
      t.ok(read <= 3 * 10240, `a record or a few of the stream, not the 300 KB file before it (${read} bytes)`)

      // The same with COMPRESS taken out of the index (a DMA that keeps only what it sent): our
      // data service first looks at the stream's start, and through that mover the look too is a
      // whole record (a 512-byte block would wait for ever), then reads by offset as before.
      const lines = fs.readFileSync(path.join(dir, 'index3'), 'utf8').split('\n')
      t.ok(lines.includes('DE COMPRESS=none'), 'the index has COMPRESS=none from DATA_GET_ENV')
      fs.writeFileSync(path.join(dir, 'index3-bare'), lines.filter((l) => !l.startsWith('DE COMPRESS=')).join('\n'))
      const y = await ndmjob(['-x', '-D', agent, '-T', daemon.agent, '-f', tape, '-C', '/r/dar4', '-J', path.join(dir, 'index3-bare'), '-E', 'DIRECT=y', '-v', 'dir/sub/c.txt'], 45_000)
      t.match(y, /LOG_FILE messages: 1 OK, 0 ERROR, total 1 of 1/)
      t.notMatch(y, /stalled/, 'no stall')
      t.ok((await readAll(dest, 'dar4/dir/sub/c.txt')).equals(files['dir/sub/c.txt'] ?? Buffer.alloc(0)), 'the chosen file, byte for byte, COMPRESS unsaid')
      t.match(y, /direct access restore of 1 name\(s\), in whole records of 10240 bytes/)
      const m = /direct access: (\d+) read\(s\), (\d+) bytes/.exec(y)
      t.equal(Number(m?.[1]), Number(/direct access: (\d+) read\(s\)/.exec(x)?.[1]) + 1, 'one read more than with COMPRESS said: the look at the start')
      t.ok(Number(m?.[2] ?? Infinity) <= 4 * 10240, `the first record and a few more (${m?.[2] ?? '?'} bytes)`)
    })
  })
}

if (haveNdmjob) {
  t.test('a served process (tsnfs serve --ndmp, local exports): ndmjob -c to its tape, -x back', async (t) => {
    const dir = t.testdir({ auth: 'dma:pw\n', src: { 'f.txt': 'from a local export\n', sub: { 'g.bin': 'x'.repeat(70_000) } }, dst: {}, tape: '' })
    const src = path.join(dir, 'src')
    const dst = path.join(dir, 'dst')
    fs.writeFileSync(path.join(dir, 'exports'), `${src} *(rw,insecure,no_root_squash,backend=local)\n${dst} *(rw,insecure,no_root_squash,backend=local)\n`)
    const tape = path.join(dir, 'tape')
    const s = await serveProcess(t, ['--exports', path.join(dir, 'exports'), '--port', '0', '--host', '127.0.0.1', '--state-dir', dir, '--ndmp', '0', '--ndmp-auth', path.join(dir, 'auth'), '--ndmp-tape', tape])
    const m = /ndmp: TCP port (\d+)/.exec(s.banner)
    t.ok(m, 'the banner names the NDMP port')
    const agent = `127.0.0.1:${m?.[1] ?? '0'}/4t,dma,pw`
    const c = await runNdmjob(['-c', '-D', agent, '-f', tape, '-C', src, '-E', 'UPDATE=y', '-v'])
    t.match(c, { code: 0, out: /Operation ended OKAY/ })
    const x = await runNdmjob(['-x', '-D', agent, '-f', tape, '-C', `${dst}/back`, '-v'])
    t.match(x, { code: 0, out: /Operation ended OKAY/ })
    t.equal(fs.readFileSync(path.join(dst, 'back', 'f.txt'), 'utf8'), 'from a local export\n')
    t.equal(fs.readFileSync(path.join(dst, 'back', 'sub', 'g.bin'), 'utf8'), 'x'.repeat(70_000))
    t.ok(fs.existsSync(path.join(dir, 'ndmp', 'levels', 'dumpdates.json')), 'UPDATE=y recorded the level in the state directory')
  })
}

async function readAll(e: NdmpExport, p: string): Promise<Buffer> {
  const ref = await resolve(e.vfs, p)
  const parts: Buffer[] = []
  let off = 0n
  for (;;) {
    const r = await e.vfs.read(ref, off, 65536)
    parts.push(Buffer.from(r.data))
    off += BigInt(r.data.length)
    if (r.eof || r.data.length === 0) break
  }
  return Buffer.concat(parts)
}

/** A one-connection TCP server keeping what it receives in `file` (the "tape" of tape-tcp). */
async function collector(file: string): Promise<{ port: number; done: Promise<void> }> {
  let finish: () => void = () => undefined
  const done = new Promise<void>((r) => (finish = r))
  const srv = net.createServer((s) => {
    const w = fs.createWriteStream(file)
    s.pipe(w)
    w.on('close', () => {
      srv.close()
      finish()
    })
  })
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
  return { port: (srv.address() as net.AddressInfo).port, done }
}

/** A one-connection TCP server sending `file` (a recover's tape-tcp). */
async function feeder(file: string): Promise<{ port: number }> {
  const srv = net.createServer((s) => {
    s.on('error', () => undefined)
    fs.createReadStream(file).pipe(s)
    srv.close()
  })
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
  return { port: (srv.address() as net.AddressInfo).port }
}

/** The records of our tape file (server/ndmp/tape/format.ts: a 128-byte header, then 16-byte frames). */
function ourTapeRecords(tape: Buffer): Buffer {
  const out: Buffer[] = []
  let at = HEADER_SIZE
  while (at + FRAME_SIZE <= tape.length) {
    if (tape.readUInt32BE(at) !== FRAME_MAGIC) throw new Error(`no frame magic at ${at}`)
    const kind = tape.readUInt32BE(at + 4)
    const len = tape.readUInt32BE(at + 8)
    at += FRAME_SIZE
    if (kind === KIND_RECORD) out.push(tape.subarray(at, at + len))
    at += kind === KIND_RECORD ? len : 0
  }
  return Buffer.concat(out)
}

/**
 * The data records of ndmjob's simulated tape, in order: each record follows a 32-byte gap
 * (u_long magic 0x0BEEFEE0, rectype 'DATA'/'FILE'/'BOT_'/'EOT_', prev_size, size; 8 bytes each
 * on this 64-bit build, little endian).
 */
function simulatorRecords(tape: Buffer): Buffer {
  const out: Buffer[] = []
  let at = 0
  while (at + 32 <= tape.length) {
    if (tape.readUInt32LE(at) !== 0x0beefee0) throw new Error(`no gap magic at ${at}`)
    const type = tape.subarray(at + 8, at + 12).toString('latin1')
    const size = Number(tape.readBigUInt64LE(at + 24))
    at += 32
    if (type === 'DATA') out.push(tape.subarray(at, at + size))
    if (type === 'EOT_') break
    at += type === 'DATA' ? size : 0
  }
  return Buffer.concat(out)
}
