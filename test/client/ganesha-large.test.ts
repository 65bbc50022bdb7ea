/*
 * Large copies against NFS-Ganesha VFS (issue 11 point 1), which advertises
 * 64 MiB transfer sizes: `tsnfs cp` of 20 MiB both ways, and 1 GiB both
 * ways through the library's streams, byte-exact. The 1 GiB source is
 * generated as it is sent and both ends are compared by SHA-256 as they
 * stream, so the only copy of it is the one Ganesha writes.
 */
import t from 'tap'
import { createHash, randomInt } from 'node:crypto'
import { createReadStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { fileURLToPath } from 'node:url'
import { NfsClient } from '../../client/nfs-client.ts'
import { startGanesha } from '../helpers/ganesha.ts'
import { seeded } from '../helpers/lossy-proxy.ts'
import { run } from '../helpers/server.ts'
import { MIB } from './file-helpers.ts'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const cli = join(root, 'dist/cli/main.js')
const GIB = 1024 * MIB

// 1 GiB each way on a shared machine: more than the suite's two minutes per file.
t.setTimeout(300_000)

const SEED = Number(process.env.TSNFS_SEED ?? randomInt(1, 0x7fff_ffff))
t.comment(`seed ${String(SEED)} (TSNFS_SEED=${String(SEED)} replays it)`)

const base = t.testdir({ export: {}, state: {}, local: {} })
const exportDir = join(base, 'export')
mkdirSync(exportDir, { recursive: true })
mkdirSync(join(base, 'local'), { recursive: true })
const g = await startGanesha(t, exportDir, join(base, 'state'))

/** Seeded bytes. */
function pattern(n: number, seed: number): Buffer {
  const random = seeded(seed)
  const b = Buffer.allocUnsafe(n + 3)
  for (let i = 0; i < n; i += 4) b.writeUInt32BE(Math.floor(random() * 0x1_0000_0000), i)
  return b.subarray(0, n)
}

/**
 * `size` bytes: one seeded MiB repeated, each 4 KiB page stamped with its
 * page number, so a page in the wrong place changes the hash. The SHA-256
 * of what was produced is in hash() once the stream has ended.
 */
function generated(size: number, seed: number): { stream: Readable; hash: () => string } {
  const block = pattern(MIB, seed)
  const h = createHash('sha256')
  let at = 0
  const stream = new Readable({
    highWaterMark: 2 * MIB,
    read() {
      if (at >= size) {
        this.push(null)
        return
      }
      const n = Math.min(MIB, size - at)
      const out = Buffer.from(block.subarray(0, n))
      for (let p = 0; p < n; p += 4096) out.writeUInt32BE((at + p) / 4096, p)
      at += n
      h.update(out)
      this.push(out)
    },
  })
  return { stream, hash: () => h.digest('hex') }
}

function hashing(): { sink: Writable; hash: () => string; bytes: () => number } {
  const h = createHash('sha256')
  let n = 0
  const sink = new Writable({
    highWaterMark: 4 * MIB,
    write(chunk: Buffer, _e, cb) {
      h.update(chunk)
      n += chunk.length
      cb()
    },
  })
  return { sink, hash: () => h.digest('hex'), bytes: () => n }
}

t.test('tsnfs cp of 20 MiB to and from Ganesha VFS (64 MiB rtpref), byte-exact', async t => {
  if (!existsSync(cli)) await run('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root })
  const data = pattern(20 * MIB + 4321, SEED)
  const local = join(base, 'local', 'src20')
  writeFileSync(local, data)
  await run(process.execPath, [cli, 'cp', local, g.url('/up20')])
  t.ok(readFileSync(join(exportDir, 'up20')).equals(data), 'uploaded byte-exact (read on the host)')
  const back = join(base, 'local', 'down20')
  const started = Date.now()
  await run(process.execPath, [cli, 'cp', g.url('/up20'), back], { timeout: 60_000 })
  t.comment(`download took ${String(Date.now() - started)} ms`)
  t.ok(readFileSync(back).equals(data), 'downloaded byte-exact')
})

t.test('1 GiB to and from Ganesha VFS through the library streams, byte-exact (SHA-256)', async t => {
  const c = await NfsClient.mount(g.url())
  t.teardown(() => c.umount())
  t.equal(c.limits.fsinfo.rtpref, 64 * MIB, 'Ganesha prefers 64 MiB READs')
  t.strictSame([c.limits.rsize, c.limits.wsize], [MIB, MIB], 'the client asks 1 MiB')
  const src = generated(GIB, SEED)
  // The generator makes a new buffer per chunk: they are handed over, not copied.
  await pipeline(src.stream, c.createWriteStream('/gib', { transfer: true }))
  const sent = src.hash()
  t.equal(statSync(join(exportDir, 'gib')).size, GIB)
  const onHost = hashing()
  await pipeline(createReadStream(join(exportDir, 'gib'), { highWaterMark: 4 * MIB }), onHost.sink)
  t.equal(onHost.hash(), sent, 'what Ganesha stored is what was sent')
  // A second mount reads it: nothing comes from the writer's block cache.
  const r = await NfsClient.mount(g.url())
  t.teardown(() => r.umount())
  const got = hashing()
  await pipeline(r.createReadStream('/gib'), got.sink)
  t.equal(got.bytes(), GIB)
  t.equal(got.hash(), sent, 'read back byte-exact')
  t.strictSame([r.stats().rpc.retransmits, r.stats().rpc.reconnects], [0, 0], 'no call was re-sent')
})
