/*
 * The NDMP job driver against our own NDMP server (server/ndmp: DATA, MOVER and TAPE services):
 * one agent doing both (the mover and the data service joined by ADDR_LOCAL), backing up a
 * memory export to a pool tape the server serves as a tape library; the FH posts become the
 * job's file history, the level goes in LEVEL. Then a three-way backup: our server as the data
 * agent, ndmjob -o daemon as the tape agent (MOVER_LISTEN on TCP, DATA_CONNECT to it).
 */
import t from 'tap'
import { readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { driversFor } from '../../dma/drivers/select.ts'
import { queryLogs } from '../../dma/jobs/log.ts'
import { jobsDir } from '../../dma/jobs/registry.ts'
import { DmaService } from '../../dma/jobs/service.ts'
import { Pool } from '../../dma/pool/pool.ts'
import { parseExport } from '../../dma/schedule/export-spec.ts'
import { startNdmpServer } from '../../server/ndmp/server.ts'
import { TapeLibrary } from '../../server/ndmp/tape/library.ts'
import type { NdmpExport } from '../../server/ndmp/service-types.ts'
import { MemoryVfs } from '../../vfs/memory/memory-vfs.ts'
import { mkdirp, writeFile as vfsWrite } from '../backup/helpers.ts'
import { haveNdmjob, NDMJOB, ndmjobDaemon } from '../helpers/ndmjob.ts'


async function memExport(): Promise<NdmpExport> {
  const vfs = new MemoryVfs()
  const exp: NdmpExport = { path: '/exp', backend: 'memory', vfs, root: vfs.root() }
  await mkdirp(vfs, 'docs/old')
  await vfsWrite(vfs, 'docs/a.txt', Buffer.from('alpha\n'))
  await vfsWrite(vfs, 'docs/old/b.bin', Buffer.alloc(100_000, 7))
  return exp
}

t.test('our server as data and tape agent (ADDR_LOCAL)', async (t) => {
  const dir = t.testdir({})
  const pool = join(dir, 'pool')
  await Pool.label(pool, 'L1', { capacity: 64 * 1024 * 1024 })
  const exp = await memExport()
  const server = await startNdmpServer({ port: 0, host: '127.0.0.1', credentials: new Map([['dma', 'secret']]), exports: () => [exp], tapes: [{ name: pool, path: pool }], stateDir: join(dir, 'srv') })
  t.teardown(() => server.close())
  const state = join(dir, 'state')
  const service = await DmaService.open(state, driversFor(state))
  await writeFile(join(state, 'ndmp-auth'), `127.0.0.1 dma secret md5\n`)
  const job = await service.wait((await service.start({ name: 'manual', spec: parseExport(`127.0.0.1:${server.port}:/exp`), pool, level: 0 })).id)
  t.match(job, { state: 'done', tapes: ['L1'] }, job.error ?? 'done')
  t.ok(job.bytes > 100_000, `the stream went to tape (${job.bytes} bytes)`)
  t.ok((await stat(join(pool, 'L1.tape'))).size > 100_000)
  const history = (await readFile(join(jobsDir(state), `${job.id}.fh`), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { path: string; type?: string })
  t.ok(history.length >= 3, `file history from FH posts (${history.length} entries)`)
  t.ok(history.some((h) => h.path.includes('b.bin')), 'b.bin is in the history')
  t.equal(job.files, history.length)
  const log = (await queryLogs(jobsDir(state), { job: job.id })).map((l) => l.message)
  // The job ends done, then its file history goes into the catalog (dma/jobs/service.ts).
  t.match(log.at(-2), /^done: \d+ bytes, \d+ files on L1/)
  t.match(log.at(-1), new RegExp(`^file history in the catalog as backup \\d+ \\(${history.length} entries, \\d+ ms\\)$`))
})

t.test('three-way: our data agent, ndmjob\'s tape agent', { skip: haveNdmjob ? false : `${NDMJOB} is not installed` }, async (t) => {
  const dir = t.testdir({})
  const pool = join(dir, 'pool')
  await Pool.label(pool, 'W1', { capacity: 64 * 1024 * 1024 })
  const exp = await memExport()
  const server = await startNdmpServer({ port: 0, host: '127.0.0.1', credentials: new Map([['ndmp', 'ndmp']]), exports: () => [exp], stateDir: join(dir, 'srv') })
  t.teardown(() => server.close())
  const { port } = await ndmjobDaemon(t, dir)
  const state = join(dir, 'state')
  const service = await DmaService.open(state, driversFor(state))
  await writeFile(join(state, 'ndmp-auth'), `* ndmp ndmp md5\n`)
  const job = await service.wait((await service.start({ name: 'manual', spec: parseExport(`127.0.0.1:${server.port}:/exp`), tapeAgent: `127.0.0.1:${port}`, pool, level: 0 })).id)
  t.match(job, { state: 'done', tapes: ['W1'] }, job.error ?? 'done')
  t.ok(job.bytes > 100_000 && job.bytes % 10240 === 0, `whole records moved by ndmjob's mover (${job.bytes})`)
  t.ok(job.files >= 3, 'file history from our data agent')
})

t.test('end of medium on our tape agent: the job pauses, is continued onto the next tape', async (t) => {
  const dir = t.testdir({})
  const pool = join(dir, 'pool')
  await Pool.label(pool, 'E1', { capacity: 64 * 1024 })
  await Pool.label(pool, 'E2', { capacity: 64 * 1024 * 1024 })
  // E1 as a cartridge of 64 KiB (the agent's own header says so; an empty file would be unlimited).
  await rm(join(pool, 'E1.tape'))
  await new TapeLibrary(pool).create('E1', { capacity: 64 * 1024 })
  const exp = await memExport()
  const server = await startNdmpServer({ port: 0, host: '127.0.0.1', credentials: new Map([['dma', 'secret']]), exports: () => [exp], tapes: [{ name: pool, path: pool }], stateDir: join(dir, 'srv') })
  t.teardown(() => server.close())
  const state = join(dir, 'state')
  const service = await DmaService.open(state, driversFor(state))
  await writeFile(join(state, 'ndmp-auth'), `127.0.0.1 dma secret\n`)
  const started = await service.start({ name: 'manual', spec: parseExport(`127.0.0.1:${server.port}:/exp`), pool, level: 0 })
  let paused = await service.get(started.id)
  for (let i = 0; i < 800 && paused.state === 'running'; i++) {
    await new Promise((r) => setTimeout(r, 25))
    paused = await service.get(started.id)
  }
  t.match(paused, { state: 'paused', needs: { label: 'E2', isNew: false }, tapes: ['E1'] }, paused.error ?? 'paused at EOM')
  await service.continue(started.id)
  const job = await service.wait(started.id)
  t.match(job, { state: 'done', tapes: ['E1', 'E2'] }, job.error ?? 'done')
  const index = await (await Pool.open(pool)).index()
  t.match(index.tapes, [{ label: 'E1', state: 'full' }, { label: 'E2', state: 'used' }])
  t.equal(index.tapes.reduce((n, x) => n + x.used, 0), job.bytes, 'the two tapes hold what the mover moved')
})

t.test('abort of an NDMP job paused for a tape; the agent serves the next job', async (t) => {
  const dir = t.testdir({})
  const pool = join(dir, 'pool')
  await Pool.label(pool, 'S1', { capacity: 64 * 1024 })
  await rm(join(pool, 'S1.tape'))
  await new TapeLibrary(pool).create('S1', { capacity: 64 * 1024 })
  const exp = await memExport()
  const server = await startNdmpServer({ port: 0, host: '127.0.0.1', credentials: new Map([['dma', 'secret']]), exports: () => [exp], tapes: [{ name: pool, path: pool }], stateDir: join(dir, 'srv') })
  t.teardown(() => server.close())
  const state = join(dir, 'state')
  const service = await DmaService.open(state, driversFor(state))
  await writeFile(join(state, 'ndmp-auth'), `* dma secret\n`)
  const started = await service.start({ name: 'manual', spec: parseExport(`127.0.0.1:${server.port}:/exp`), pool, level: 0 })
  let paused = await service.get(started.id)
  for (let i = 0; i < 800 && paused.state === 'running'; i++) {
    await new Promise((r) => setTimeout(r, 25))
    paused = await service.get(started.id)
  }
  t.match(paused, { state: 'paused', needs: { label: 'pool-001', isNew: true } })
  const aborted = await service.abort(started.id)
  t.match(aborted, { state: 'aborted', error: /aborted/ })
  await Pool.label(pool, 'S2', { capacity: 64 * 1024 * 1024 })
  const next = await service.wait((await service.start({ name: 'manual', spec: parseExport(`127.0.0.1:${server.port}:/exp`), pool, level: 0 })).id)
  t.match(next, { state: 'done', tapes: ['S2'] }, next.error ?? 'the next job runs')
})
