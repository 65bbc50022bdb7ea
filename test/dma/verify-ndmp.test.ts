/*
 * tsnfs backup verify through an NDMP tape agent (our server's tape service): the DMA reads the
 * backup's tapes back with TAPE_OPEN, MOVER_LISTEN in WRITE mode and MOVER_READ, as it must when
 * the pool's tape files are on the agent's host. A one-tape backup verifies as the local read
 * does (same files, bytes and stream bytes); a backup on two tapes (end of medium, continued) is
 * read across the tape change; a flipped byte on tape makes the agent stop (a damaged record)
 * and the verify fail, exit 1; a tape agent that is not there fails with its address.
 */
import t from 'tap'
import type { Test } from 'tap'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { backup } from '../../cli/backup.ts'
import { driversFor } from '../../dma/drivers/select.ts'
import { jobsDir, loadJob } from '../../dma/jobs/registry.ts'
import { DmaService } from '../../dma/jobs/service.ts'
import type { VerifyReport } from '../../dma/jobs/verify.ts'
import { Pool } from '../../dma/pool/pool.ts'
import { parseExport } from '../../dma/schedule/export-spec.ts'
import { startNdmpServer } from '../../server/ndmp/server.ts'
import type { NdmpExport } from '../../server/ndmp/service-types.ts'
import { TapeLibrary } from '../../server/ndmp/tape/library.ts'
import { MemoryVfs } from '../../vfs/memory/memory-vfs.ts'
import { mkdirp, writeFile as vfsWrite } from '../backup/helpers.ts'

const SEED = Number(process.env.TSNFS_SEED ?? Date.now() % 1_000_000)
t.comment(`seed ${SEED} (TSNFS_SEED=${SEED} to repeat)`)

/** `n` bytes from SEED (xorshift): the run repeats with TSNFS_SEED. */
function seeded(n: number): Buffer {
  const b = Buffer.alloc(n)
  let x = SEED | 1
  for (let i = 0; i < n; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    b[i] = x & 255
  }
  return b
}

interface Setup {
  state: string
  pool: string
  job: string
  agent: string
}

/** A level 0 backup of a memory export by our manager, our server as data and tape agent. */
async function backedUp(t: Test, capacities: number[], big: number): Promise<Setup> {
  const dir = t.testdir({})
  const pool = join(dir, 'pool')
  for (const [i, capacity] of capacities.entries()) {
    await Pool.label(pool, `V${i + 1}`, { capacity })
    // A small cartridge as the agent's own header says (an empty file would be unlimited).
    if (capacity < 1024 * 1024) {
      await rm(join(pool, `V${i + 1}.tape`))
      await new TapeLibrary(pool).create(`V${i + 1}`, { capacity })
    }
  }
  const vfs = new MemoryVfs()
  const exp: NdmpExport = { path: '/exp', backend: 'memory', vfs, root: vfs.root() }
  await mkdirp(vfs, 'docs/old')
  await vfsWrite(vfs, 'docs/a.txt', Buffer.from('alpha\n'))
  await vfsWrite(vfs, 'docs/old/b.bin', seeded(big))
  await vfsWrite(vfs, 'c.txt', Buffer.from('gamma '.repeat(1000)))
  const server = await startNdmpServer({ port: 0, host: '127.0.0.1', credentials: new Map([['dma', 'secret']]), exports: () => [exp], tapes: [{ name: pool, path: pool }], stateDir: join(dir, 'srv') })
  t.teardown(() => server.close())
  const state = join(dir, 'state')
  const service = await DmaService.open(state, driversFor(state))
  await writeFile(join(state, 'ndmp-auth'), `127.0.0.1 dma secret\n`)
  const { id } = await service.start({ name: 'manual', spec: parseExport(`127.0.0.1:${server.port}:/exp`), pool, level: 0 })
  for (let i = 0; i < 3000; i++) {
    const job = await service.get(id)
    if (job.state === 'paused') await service.continue(id)
    if (job.state !== 'running' && job.state !== 'paused') break
    await sleep(10)
  }
  const job = await service.wait(id)
  t.equal(job.state, 'done', job.error ?? 'backed up')
  return { state, pool, job: id, agent: `127.0.0.1:${server.port}` }
}

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = ''
  let err = ''
  const code = await backup(argv, { out: (s) => (out += s), err: (s) => (err += s) })
  return { code, out, err }
}

t.test('one tape: through the tape agent as through the local file', async (t) => {
  const s = await backedUp(t, [64 * 1024 * 1024], 100_000)
  t.equal((await loadJob(jobsDir(s.state), s.job)).tapeAgent, s.agent, 'the job records the agent that opened its tapes')
  const local = JSON.parse((await cli(['verify', s.job, '--state', s.state, '--json'])).out) as VerifyReport
  const r = await cli(['verify', s.job, '--state', s.state, '--tape', s.agent, '--json'])
  t.equal(r.code, 0, r.out + r.err)
  const remote = JSON.parse(r.out) as VerifyReport
  t.match(remote, { ok: true, files: 3, bytes: '106006', tapes: ['V1'], mismatches: [], missing: [], damage: [], indexed: true })
  t.equal(remote.streamBytes, local.streamBytes, 'the same stream bytes as the local read')
  t.ok(BigInt(remote.streamBytes) > 106006n)
})

t.test('two tapes: read across the tape change', async (t) => {
  const s = await backedUp(t, [200 * 1024, 64 * 1024 * 1024], 300_000)
  const job = await loadJob(jobsDir(s.state), s.job)
  t.strictSame(job.tapes, ['V1', 'V2'], 'the backup went on to a second tape')
  const r = await cli(['verify', s.job, '--state', s.state, '--tape', s.agent])
  t.equal(r.code, 0, r.out + r.err)
  t.match(r.out, /^verify OK: 3 files, 306006 bytes match their recorded SHA-256 \(\d+ stream bytes on V1, V2\)$/m)
})

t.test('a damaged tape fails the verify; an agent that is not there', async (t) => {
  const s = await backedUp(t, [64 * 1024 * 1024], 100_000)
  const tape = join(s.pool, 'V1.tape')
  const bytes = await readFile(tape)
  const at = 128 + 16 + 3000
  bytes[at] = (bytes[at] ?? 0) ^ 0xff
  await writeFile(tape, bytes)
  const r = await cli(['verify', s.job, '--state', s.state, '--tape', s.agent, '--json'])
  t.equal(r.code, 1, r.out + r.err)
  const report = JSON.parse(r.out) as VerifyReport
  t.equal(report.ok, false)
  t.match(report.error, new RegExp(`^tape agent ${s.agent.replace(/\./g, '\\.')}: ${tape.replace(/[/.]/g, '\\$&')}: the mover paused \\(NDMP4_MOVER_PAUSE_MEDIA_ERROR\\) at stream byte 0: .*at byte 128: record 0 of file 0 fails its CRC \\(damaged tape\\)$`), 'the error names the agent, the tape, the record')
  const gone = await cli(['verify', s.job, '--state', s.state, '--tape', '127.0.0.1:1', '--json'])
  t.equal(gone.code, 1, gone.out + gone.err)
  t.match(JSON.parse(gone.out), { ok: false, error: /^cannot connect to 127\.0\.0\.1:1: connect ECONNREFUSED/ }, 'no agent: the report says where it tried')
})
