/*
 * Restores over NDMP where the stream is not on one tape of our own agent:
 *  - a backup that spans two tapes (end of medium on a 64 KiB cartridge): the full restore reads
 *    on across the tape change (the mover pauses at the first tape's end; the DMA loads the next
 *    and sets the window to its part of the stream), and a file on the second tape is restored
 *    by direct access (the mover pauses SEEK; the DMA loads the tape holding that offset);
 *  - three-way between two of our servers: the data service asks the tape server's mover (TCP)
 *    whole records, which it serves, also past the short last record of a stream (EOF pause);
 *  - three-way: ndmjob (`-o daemon`, the NDMP SDK) as the tape agent, our data agent (TCP): a
 *    full restore (the DMA rewinds first: the SDK's simulated drive keeps its place across opens),
 *    and one file by direct access, with no stall: our data service asks that mover whole records
 *    (it serves nothing else), so a record or two of the stream moves, not the whole.
 */
import t from 'tap'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { driversFor } from '../../dma/drivers/select.ts'
import { DmaService } from '../../dma/jobs/service.ts'
import { Pool } from '../../dma/pool/pool.ts'
import { restoreExport } from '../../dma/restore/run.ts'
import { parseExport } from '../../dma/schedule/export-spec.ts'
import { startNdmpServer } from '../../server/ndmp/server.ts'
import { TapeLibrary } from '../../server/ndmp/tape/library.ts'
import { resolve, snapshotTree, writeFile as vfsWrite } from '../backup/helpers.ts'
import { haveNdmjob, NDMJOB, ndmjobDaemon } from '../helpers/ndmjob.ts'
import { NOW, readText, strip, tree } from './memory-tree.ts'

t.test('a backup on two tapes: full restore across the change, one file by seeking to its tape', async (t) => {
  const dir = t.testdir({})
  const pool = join(dir, 'pool')
  await Pool.label(pool, 'E1', { capacity: 64 * 1024 })
  await Pool.label(pool, 'E2', { capacity: 64 * 1024 * 1024 })
  await rm(join(pool, 'E1.tape'))
  await new TapeLibrary(pool).create('E1', { capacity: 64 * 1024 })
  const { exp, dest } = await tree('on the second tape\n')
  const server = await startNdmpServer({ port: 0, host: '127.0.0.1', credentials: new Map([['dma', 'secret']]), exports: () => [exp, dest], tapes: [{ name: pool, path: pool }], stateDir: join(dir, 'srv') })
  t.teardown(() => server.close())
  const state = join(dir, 'state')
  const service = await DmaService.open(state, driversFor(state))
  await writeFile(join(state, 'ndmp-auth'), '127.0.0.1 dma secret\n')
  const exportText = `127.0.0.1:${server.port}:/exp`
  const started = await service.start({ name: 'manual', spec: parseExport(exportText), pool, level: 0 })
  for (let i = 0; i < 800 && (await service.get(started.id)).state === 'running'; i++) await new Promise((r) => setTimeout(r, 25))
  await service.continue(started.id)
  const job = await service.wait(started.id)
  t.match(job, { state: 'done', tapes: ['E1', 'E2'] }, job.error ?? 'done on two tapes')

  const full = await restoreExport({ stateDir: state, export: exportText, atNs: NOW(), paths: [], to: '/r/full', overwrite: false })
  t.equal(full.job.state, 'done', full.job.error ?? '')
  t.same(strip(await snapshotTree(dest.vfs), 'full/'), strip(await snapshotTree(exp.vfs), ''), 'the whole tree, read across both tapes')

  const one = await restoreExport({ stateDir: state, export: exportText, atNs: NOW(), paths: ['/zz-last.txt'], to: '/r/one', overwrite: false })
  t.equal(one.job.state, 'done', one.job.error ?? '')
  t.equal(await readText(dest, 'one/zz-last.txt'), 'on the second tape\n')
  t.ok(one.bytesMoved < 8192n, `a few blocks moved (${one.bytesMoved})`)
})

t.test('three-way between two of our servers: direct access in whole records over TCP', async (t) => {
  const dir = t.testdir({})
  const pool = join(dir, 'pool')
  await Pool.label(pool, 'T1', { capacity: 64 * 1024 * 1024 })
  const { exp, dest } = await tree('on the second tape\n')
  const data = await startNdmpServer({ port: 0, host: '127.0.0.1', credentials: new Map([['dma', 'secret']]), exports: () => [exp, dest], stateDir: join(dir, 'data') })
  t.teardown(() => data.close())
  const tapes = await startNdmpServer({ port: 0, host: '127.0.0.1', credentials: new Map([['dma', 'secret']]), exports: () => [], tapes: [{ name: pool, path: pool }], stateDir: join(dir, 'tapes') })
  t.teardown(() => tapes.close())
  const state = join(dir, 'state')
  const service = await DmaService.open(state, driversFor(state))
  await writeFile(join(state, 'ndmp-auth'), '127.0.0.1 dma secret\n')
  const exportText = `127.0.0.1:${data.port}:/exp`
  const tapeAgent = `127.0.0.1:${tapes.port}`
  const job = await service.wait((await service.start({ name: 'manual', spec: parseExport(exportText), tapeAgent, pool, level: 0 })).id)
  t.match(job, { state: 'done', tapes: ['T1'] }, job.error ?? 'done')
  // Our data service cannot tell our mover from another over TCP: it asks whole records, which
  // ours serves too (a read past the short last record of a stream: the next subtest).
  const logs: string[] = []
  const one = await restoreExport({ stateDir: state, export: exportText, atNs: NOW(), paths: ['/docs/a.txt', '/zz-last.txt'], to: '/r/one', overwrite: false, tapeAgent, signal: AbortSignal.timeout(45_000), onLog: (_l, m) => logs.push(m) })
  t.equal(one.job.state, 'done', one.job.error ?? '')
  if (one.job.state !== 'done') t.comment(logs.join('\n'))
  t.equal(await readText(dest, 'one/zz-last.txt'), 'on the second tape\n', 'the last member')
  t.equal(await readText(dest, 'one/docs/a.txt'), 'alpha\n')
  await t.rejects(resolve(dest.vfs, 'one/docs/old'), { code: 'ENOENT' }, 'nothing else')
  t.ok(logs.some((m) => /direct access restore of 2 name\(s\), in whole records of 10240 bytes/.test(m)), 'whole records over TCP')
  t.notOk(logs.some((m) => m.includes('mover stalled')), 'no stall')
  t.ok(one.bytesMoved <= 4n * 10240n, `a few records moved (${one.bytesMoved})`)
})

t.test('three-way between two of our servers: a widened read past the short last record of the stream', async (t) => {
  const dir = t.testdir({})
  const pool = join(dir, 'pool')
  const { exp, dest } = await tree('on the second tape\n')
  const data = await startNdmpServer({ port: 0, host: '127.0.0.1', credentials: new Map([['dma', 'secret']]), exports: () => [exp, dest], stateDir: join(dir, 'data') })
  t.teardown(() => data.close())
  const tapes = await startNdmpServer({ port: 0, host: '127.0.0.1', credentials: new Map([['dma', 'secret']]), exports: () => [], tapes: [{ name: pool, path: pool }], stateDir: join(dir, 'tapes') })
  t.teardown(() => tapes.close())
  const state = join(dir, 'state')
  const service = await DmaService.open(state, driversFor(state))
  await writeFile(join(state, 'ndmp-auth'), '127.0.0.1 dma secret\n')
  const exportText = `127.0.0.1:${data.port}:/exp`
  const tapeAgent = `127.0.0.1:${tapes.port}`
  const R = 10240n
  /** A level 0 on a new tape; the stream's size (a full restore moves all of it) and /zz-last.txt's header offset. */
  const round = async (label: string): Promise<{ size: bigint; at: bigint }> => {
    await Pool.label(pool, label, { capacity: 64 * 1024 * 1024 })
    const job = await service.wait((await service.start({ name: 'manual', spec: parseExport(exportText), tapeAgent, pool, level: 0 })).id)
    t.match(job, { state: 'done', tapes: [label] }, job.error ?? 'done')
    const full = await restoreExport({ stateDir: state, export: exportText, atNs: NOW(), paths: [], to: `/r/full-${label}`, overwrite: false, tapeAgent, signal: AbortSignal.timeout(45_000) })
    t.equal(full.job.state, 'done', full.job.error ?? '')
    const plan = await restoreExport({ stateDir: state, export: exportText, atNs: NOW(), paths: ['/zz-last.txt'], to: `/r/probe-${label}`, overwrite: false, tapeAgent, signal: AbortSignal.timeout(45_000) })
    return { size: full.bytesMoved, at: plan.plan.steps[0]?.files[0]?.streamOffset ?? -1n }
  }
  // Grow the file before /zz-last.txt so that its header starts in the stream's last record,
  // which our mover stores short (nothing is padded).
  const first = await round('L1')
  const grow = (R + 512n - (first.at % R)) % R
  await vfsWrite(exp.vfs, 'docs/old/b.bin', Buffer.alloc(100_000 + Number(grow), 7))
  const second = await round('L2')
  t.equal(second.at / R, (second.size - 1n) / R, `/zz-last.txt (at ${second.at}) is in the last record of the ${second.size}-byte stream`)
  t.ok(second.size % R !== 0n, 'which is short')
  const logs: string[] = []
  const one = await restoreExport({ stateDir: state, export: exportText, atNs: NOW(), paths: ['/zz-last.txt'], to: '/r/one', overwrite: false, tapeAgent, signal: AbortSignal.timeout(45_000), onLog: (_l, m) => logs.push(m) })
  t.equal(one.job.state, 'done', one.job.error ?? '')
  if (one.job.state !== 'done') t.comment(logs.join('\n'))
  t.equal(await readText(dest, 'one/zz-last.txt'), 'on the second tape\n', 'the last member')
  t.ok(logs.some((m) => /mover paused \(NDMP4_MOVER_PAUSE_EOF\) at stream byte \d+/.test(m)), 'the read ran past the stream\'s end (the mover paused EOF, the DMA closed it)')
  t.equal(one.bytesMoved, second.size - (second.at / R) * R, 'the last record, all there is of it')
})

t.test('three-way: ndmjob\'s tape agent, our data agent', { skip: haveNdmjob ? false : `${NDMJOB} is not installed` }, async (t) => {
  const dir = t.testdir({})
  const pool = join(dir, 'pool')
  await Pool.label(pool, 'W1', { capacity: 64 * 1024 * 1024 })
  const { exp, dest } = await tree('on the second tape\n')
  const server = await startNdmpServer({ port: 0, host: '127.0.0.1', credentials: new Map([['ndmp', 'ndmp']]), exports: () => [exp, dest], stateDir: join(dir, 'srv') })
  t.teardown(() => server.close())
  const { port } = await ndmjobDaemon(t, dir)
  const state = join(dir, 'state')
  const service = await DmaService.open(state, driversFor(state))
  await writeFile(join(state, 'ndmp-auth'), '* ndmp ndmp md5\n')
  const exportText = `127.0.0.1:${server.port}:/exp`
  const tapeAgent = `127.0.0.1:${port}`
  const job = await service.wait((await service.start({ name: 'manual', spec: parseExport(exportText), tapeAgent, pool, level: 0 })).id)
  t.match(job, { state: 'done', tapes: ['W1'] }, job.error ?? 'done')
  const logs: string[] = []
  const full = await restoreExport({ stateDir: state, export: exportText, atNs: NOW(), paths: [], to: '/r/full', overwrite: false, tapeAgent, onLog: (_l, m) => logs.push(m) })
  t.equal(full.job.state, 'done', full.job.error ?? '')
  if (full.job.state !== 'done') t.comment(logs.join('\n'))
  t.same(strip(await snapshotTree(dest.vfs), 'full/'), strip(await snapshotTree(exp.vfs), ''), 'the whole tree through ndmjob\'s mover')

  // One file by direct access: ndmjob's mover serves whole records from a record boundary only
  // (bench/README.md); our data service, connected over TCP, asks its ranges so widened. No stall,
  // no fallback to the stream's start: a record or two of the stream moves. The signal only bounds a hang.
  const dar: string[] = []
  const one = await restoreExport({ stateDir: state, export: exportText, atNs: NOW(), paths: ['/zz-last.txt'], to: '/r/one', overwrite: false, tapeAgent, signal: AbortSignal.timeout(45_000), onLog: (_l, m) => dar.push(m) })
  t.equal(one.job.state, 'done', one.job.error ?? '')
  if (one.job.state !== 'done') t.comment(dar.join('\n'))
  t.equal(await readText(dest, 'one/zz-last.txt'), 'on the second tape\n', 'the file, through ndmjob\'s mover')
  await t.rejects(resolve(dest.vfs, 'one/docs'), { code: 'ENOENT' }, 'nothing else')
  t.notOk(dar.some((m) => m.includes('mover stalled')), 'no stall')
  t.ok(dar.some((m) => /^backup \d+ \(level 0, .*\): 1 object\(s\) by direct access$/.test(m)), 'by direct access')
  t.ok(dar.some((m) => /direct access restore of 1 name\(s\), in whole records of 10240 bytes/.test(m)), 'the data service asks whole records')
  t.ok(full.bytesMoved > 4n * 10240n, `the whole stream is several records (${full.bytesMoved})`)
  t.ok(one.bytesMoved > 0n && one.bytesMoved <= 2n * 10240n, `one or two records moved (${one.bytesMoved} of ${full.bytesMoved})`)

  // A chain (level 0, level 1), a file from each, both by direct access through that mover.
  await vfsWrite(exp.vfs, 'docs/a.txt', Buffer.from('alpha, changed\n'))
  await Pool.label(pool, 'W2', { capacity: 64 * 1024 * 1024 })
  const j1 = await service.wait((await service.start({ name: 'manual', spec: parseExport(exportText), tapeAgent, pool, level: 1 })).id)
  t.match(j1, { state: 'done' }, j1.error ?? 'level 1 done')
  const chain: string[] = []
  const two = await restoreExport({ stateDir: state, export: exportText, atNs: NOW(), paths: ['/docs/a.txt', '/zz-last.txt'], to: '/r/two', overwrite: false, tapeAgent, signal: AbortSignal.timeout(60_000), onLog: (_l, m) => chain.push(m) })
  t.equal(two.job.state, 'done', two.job.error ?? '')
  if (two.job.state !== 'done') t.comment(chain.join('\n'))
  t.equal(two.plan.steps.length, 2, 'level 0 then level 1')
  t.equal(await readText(dest, 'two/zz-last.txt'), 'on the second tape\n', 'from the level 0')
  t.equal(await readText(dest, 'two/docs/a.txt'), 'alpha, changed\n', 'from the level 1')
  t.notOk(chain.some((m) => m.includes('mover stalled')), 'no stall')
  t.equal(chain.filter((m) => /^backup \d+ \(level [01], .*\): 1 object\(s\) by direct access$/.test(m)).length, 2, 'both steps by direct access')
  t.ok(two.bytesMoved <= 4n * 10240n, `a record or two per step (${two.bytesMoved})`)
})
