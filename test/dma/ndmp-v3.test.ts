/*
 * Our DMA over NDMP v3 (dma/ndmp/v3.ts): with our own server forced to v3 (it offers 3 and opens
 * nothing higher), the DMA opens the version offered and backs up, restores the whole tree and
 * one file by direct access, and verify reads the tape through the agent; and, its ndmp-auth line saying v3, through `ndmjob -o daemon` (the
 * NDMP SDK) as the tape agent, three-way: ndmjob cannot be made v3-only (its daemon offers 4 and
 * opens 2, 3 or 4), so the DMA asks for v3.
 */
import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { backup } from '../../cli/backup.ts'
import type { VerifyReport } from '../../dma/jobs/verify.ts'
import { NdmpAgent } from '../../dma/ndmp/agent.ts'
import { parseNdmpAuth } from '../../dma/ndmp/auth.ts'
import { driversFor } from '../../dma/drivers/select.ts'
import { DmaService } from '../../dma/jobs/service.ts'
import { Pool } from '../../dma/pool/pool.ts'
import { restoreExport } from '../../dma/restore/run.ts'
import { parseExport } from '../../dma/schedule/export-spec.ts'
import { startNdmpServer } from '../../server/ndmp/server.ts'
import { resolve, snapshotTree } from '../backup/helpers.ts'
import { haveNdmjob, NDMJOB, ndmjobDaemon } from '../helpers/ndmjob.ts'
import { NOW, readText, strip, tree } from './memory-tree.ts'

t.test('ndmp-auth names a version after the auth type, or in its place', async (t) => {
  t.same(parseNdmpAuth('nas1 u p v3\nnas2:10000 u p text v4\n* u p md5\n', 'f').map((c) => [c.host, c.auth.type, c.version ?? null]), [['nas1', 'md5', 3], ['nas2', 'text', 4], ['*', 'md5', null]])
  t.throws(() => parseNdmpAuth('nas1 u p v5\n', 'f'), { code: 'DMA_SCHEDULE_SYNTAX', message: /f:1: a line is HOST\[:PORT\]\|\* USER PASSWORD \[text\|md5\] \[v3\|v4\]/ })
  t.throws(() => parseNdmpAuth('nas1 u p v3 md5\n', 'f'), { code: 'DMA_SCHEDULE_SYNTAX' }, 'the type comes first')
})

t.test('our server forced to v3: backup, full restore, one file by direct access', async (t) => {
  const dir = t.testdir({})
  const pool = join(dir, 'pool')
  await Pool.label(pool, 'V1', { capacity: 64 * 1024 * 1024 })
  const { exp, dest } = await tree('the last file\n')
  const server = await startNdmpServer({ port: 0, host: '127.0.0.1', credentials: new Map([['dma', 'secret']]), exports: () => [exp, dest], tapes: [{ name: pool, path: pool }], stateDir: join(dir, 'srv'), maxVersion: 3 })
  t.teardown(() => server.close())
  const state = join(dir, 'state')
  const service = await DmaService.open(state, driversFor(state))
  await writeFile(join(state, 'ndmp-auth'), '127.0.0.1 dma secret\n')

  const probe = await NdmpAgent.forDma(state, '127.0.0.1', server.port)
  t.equal(probe.version, 3, 'the DMA opens the version offered')
  await probe.close()
  await t.rejects(NdmpAgent.open('127.0.0.1', server.port, null, 4), { code: 'NDMP_REPLY_ERROR' }, 'the server opens nothing above 3')

  const exportText = `127.0.0.1:${server.port}:/exp`
  const job = await service.wait((await service.start({ name: 'manual', spec: parseExport(exportText), pool, level: 0 })).id)
  t.match(job, { state: 'done', tapes: ['V1'] }, job.error ?? 'done')

  const logs: string[] = []
  const full = await restoreExport({ stateDir: state, export: exportText, atNs: NOW(), paths: [], to: '/r/full', overwrite: false, onLog: (_l, m) => logs.push(m) })
  t.equal(full.job.state, 'done', full.job.error ?? '')
  if (full.job.state !== 'done') t.comment(logs.join('\n'))
  t.same(strip(await snapshotTree(dest.vfs), 'full/'), strip(await snapshotTree(exp.vfs), ''), 'the whole tree over v3')

  const one = await restoreExport({ stateDir: state, export: exportText, atNs: NOW(), paths: ['/zz-last.txt'], to: '/r/one', overwrite: false })
  t.equal(one.job.state, 'done', one.job.error ?? '')
  t.equal(await readText(dest, 'one/zz-last.txt'), 'the last file\n')
  await t.rejects(resolve(dest.vfs, 'one/docs'), { code: 'ENOENT' }, 'nothing else')
  t.ok(one.bytesMoved > 0n && one.bytesMoved < 8192n, `by direct access: a few blocks moved (${one.bytesMoved})`)

  // backup verify reads the tape through the agent (its mover in WRITE mode) over v3 too.
  let out = ''
  let err = ''
  const code = await backup(['verify', job.id, '--state', state, '--tape', `127.0.0.1:${server.port}`, '--json'], { out: (x) => (out += x), err: (x) => (err += x) })
  t.equal(code, 0, out + err)
  t.match(JSON.parse(out) as VerifyReport, { ok: true, files: 3, tapes: ['V1'], mismatches: [], missing: [], damage: [] }, 'verify through the v3 tape agent')
})

t.test('v3 through ndmjob -o daemon as the tape agent', { skip: haveNdmjob ? false : `${NDMJOB} is not installed` }, async (t) => {
  const dir = t.testdir({})
  const pool = join(dir, 'pool')
  await Pool.label(pool, 'W1', { capacity: 64 * 1024 * 1024 })
  const { exp, dest } = await tree('the last file\n')
  const server = await startNdmpServer({ port: 0, host: '127.0.0.1', credentials: new Map([['ndmp', 'ndmp']]), exports: () => [exp, dest], stateDir: join(dir, 'srv'), maxVersion: 3 })
  t.teardown(() => server.close())
  const { port } = await ndmjobDaemon(t, dir)
  const state = join(dir, 'state')
  const service = await DmaService.open(state, driversFor(state))
  await writeFile(join(state, 'ndmp-auth'), '* ndmp ndmp md5 v3\n')
  const probe = await NdmpAgent.forDma(state, '127.0.0.1', port)
  t.equal(probe.version, 3, 'ndmjob\'s agent opened at v3, as the ndmp-auth line says')
  await probe.close()

  const exportText = `127.0.0.1:${server.port}:/exp`
  const tapeAgent = `127.0.0.1:${port}`
  const job = await service.wait((await service.start({ name: 'manual', spec: parseExport(exportText), tapeAgent, pool, level: 0 })).id)
  t.match(job, { state: 'done', tapes: ['W1'] }, job.error ?? 'done')

  const logs: string[] = []
  const full = await restoreExport({ stateDir: state, export: exportText, atNs: NOW(), paths: [], to: '/r/full', overwrite: false, tapeAgent, signal: AbortSignal.timeout(60_000), onLog: (_l, m) => logs.push(m) })
  t.equal(full.job.state, 'done', full.job.error ?? '')
  if (full.job.state !== 'done') t.comment(logs.join('\n'))
  t.same(strip(await snapshotTree(dest.vfs), 'full/'), strip(await snapshotTree(exp.vfs), ''), 'the whole tree through ndmjob\'s mover over v3')

  const dar: string[] = []
  const one = await restoreExport({ stateDir: state, export: exportText, atNs: NOW(), paths: ['/zz-last.txt'], to: '/r/one', overwrite: false, tapeAgent, signal: AbortSignal.timeout(45_000), onLog: (_l, m) => dar.push(m) })
  t.equal(one.job.state, 'done', one.job.error ?? '')
  if (one.job.state !== 'done') t.comment(dar.join('\n'))
  t.equal(await readText(dest, 'one/zz-last.txt'), 'the last file\n')
  t.notOk(dar.some((m) => m.includes('mover stalled')), 'no stall')
  t.ok(one.bytesMoved > 0n && one.bytesMoved <= 2n * 10240n, `by direct access: a record or two (${one.bytesMoved} of ${full.bytesMoved})`)
})
