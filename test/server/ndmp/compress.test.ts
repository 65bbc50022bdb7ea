/*
 * COMPRESS over NDMP (issue 16 §9): the DATA service reads COMPRESS=gzip|brotli (or COMPRESSION=)
 * from the backup env and compresses the stream it sends the mover; a recover recognises the
 * compression by itself. Driven by ndmjob (-E COMPRESS=..., then -x back) and by our manager
 * (--compress: the job's tape holds the compressed stream, and verify reads it). Direct access
 * cannot seek in a compressed stream (the file history's offsets are the plain stream's): our DMA
 * reads such a backup whole for a partial restore, and the DATA service refuses DIRECT=y when the
 * recover env says COMPRESS= (ndmjob hands back the backup's env from its index), before any read.
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { driversFor } from '../../../dma/drivers/select.ts'
import { queryLogs } from '../../../dma/jobs/log.ts'
import { jobsDir } from '../../../dma/jobs/registry.ts'
import { DmaService } from '../../../dma/jobs/service.ts'
import { verifyPoolBackup } from '../../../dma/jobs/verify.ts'
import { Pool } from '../../../dma/pool/pool.ts'
import { TapeStreamSource } from '../../../dma/pool/tape-reader.ts'
import { restoreExport } from '../../../dma/restore/run.ts'
import { parseExport } from '../../../dma/schedule/export-spec.ts'
import { DataEnvError, parseBackupEnv } from '../../../server/ndmp/data/env.ts'
import { startNdmpServer } from '../../../server/ndmp/server.ts'
import type { NdmpExport } from '../../../server/ndmp/service-types.ts'
import { mkdirp, snapshotTree, writeFile as vfsWrite } from '../../backup/helpers.ts'
import { haveNdmjob, memExport as mem, NDMJOB, ndmjobText as ndmjob, ndmpWithTape, runNdmjob } from '../../helpers/ndmjob.ts'

async function filled(): Promise<NdmpExport> {
  const exp = mem('/exp')
  await mkdirp(exp.vfs, 'logs')
  await vfsWrite(exp.vfs, 'logs/app.log', Buffer.from('2026-12-05T12:00:00Z INFO request served in 3 ms\n'.repeat(20_000)))
  await vfsWrite(exp.vfs, 'random.bin', randomBytes(200_000))
  return exp
}

t.test('COMPRESS in the backup env', async (t) => {
  const env = (pairs: Record<string, string>): Array<{ name: string; value: string }> => [{ name: 'FILESYSTEM', value: '/exp' }, ...Object.entries(pairs).map(([name, value]) => ({ name, value }))]
  t.equal(parseBackupEnv(env({})).compress, null, 'none by default')
  t.equal(parseBackupEnv(env({ COMPRESS: 'gzip' })).compress, 'gzip')
  t.equal(parseBackupEnv(env({ compress: 'BR' })).compress, 'brotli', 'any case, br for brotli')
  t.equal(parseBackupEnv(env({ COMPRESSION: 'y' })).compress, 'gzip', 'COMPRESSION=, y meaning gzip')
  t.equal(parseBackupEnv(env({ COMPRESS: 'none' })).compress, null)
  t.strictSame(parseBackupEnv(env({ COMPRESS: 'gzip' })).ignored, [], 'a known name')
  t.throws(() => parseBackupEnv(env({ COMPRESS: 'lz4' })), new DataEnvError('COMPRESS=lz4: expected gzip, brotli or none'))
})

t.test('ndmjob -c -E COMPRESS=gzip|brotli, then -x back', { skip: haveNdmjob ? false : `${NDMJOB} is not installed` }, async (t) => {
  const dir = t.testdir({})
  const exp = await filled()
  const dest = mem('/r')
  const { tape, agent } = await ndmpWithTape(t, dir, [exp, dest])
  const want = await snapshotTree(exp.vfs)
  for (const how of ['gzip', 'brotli'] as const) {
    await writeFile(tape, '')
    const c = await runNdmjob(['-c', '-D', agent, '-f', tape, '-C', '/exp', '-E', `COMPRESS=${how}`, '-v'])
    t.match(c, { code: 0, out: /Operation ended OKAY/ }, `${how}: backup`)
    t.match(c.out, new RegExp(`the stream is ${how}-compressed`))
    const src = new TapeStreamSource([tape])
    const head = await src.read(4)
    await src.close()
    if (how === 'gzip') t.strictSame([...(head ?? [])].slice(0, 2), [0x1f, 0x8b], 'gzip magic on tape (RFC 1952)')
    else t.notOk(head?.subarray(0, 2).equals(Buffer.from([0x1f, 0x8b])), 'brotli: no gzip magic')
    const onTape = (await readFile(tape)).length
    t.ok(onTape < 700_000, `${how}: ${onTape} bytes on tape for ~1.2 MB of files`)
    const x = await runNdmjob(['-x', '-D', agent, '-f', tape, '-C', `/r/${how}`, '-v'])
    t.match(x, { code: 0, out: /Operation ended OKAY/ }, `${how}: recover recognised the compression`)
    const back = await snapshotTree(dest.vfs)
    for (const p of ['logs/app.log', 'random.bin']) t.equal(back[`${how}/${p}`]?.data, want[p]?.data, `${how}: ${p} restored`)
  }
})

t.test('ndmjob -x -J index -E DIRECT=y on a compressed backup is refused before any read', { skip: haveNdmjob ? false : `${NDMJOB} is not installed` }, async (t) => {
  const dir = t.testdir({})
  const exp = await filled()
  const dest = mem('/r')
  const { tape, agent } = await ndmpWithTape(t, dir, [exp, dest])
  const index = join(dir, 'index')
  t.match(await ndmjob(['-c', '-D', agent, '-f', tape, '-C', '/exp', '-I', index, '-E', 'COMPRESS=gzip', '-v']), /Operation ended OKAY/, 'gzip backup with file history')
  const x = await ndmjob(['-x', '-D', agent, '-f', tape, '-C', '/r/dar', '-J', index, '-E', 'DIRECT=y', '-v', 'random.bin'])
  t.match(x, /DATA_START_RECOVER: DIRECT=y on a gzip-compressed stream \(COMPRESS=gzip\): its file history offsets are those of the uncompressed stream/, 'the LOG names the reason')
  t.match(x, /Operation complete but had problems/, 'ndmjob\'s job fails')
  t.notMatch(x, /no tar header/, 'not a header mismatch mid-way')
  t.equal((await snapshotTree(dest.vfs))['dar/random.bin'], undefined, 'nothing restored')
  const y = await ndmjob(['-x', '-D', agent, '-f', tape, '-C', '/r/whole', '-J', index, '-v', 'random.bin'])
  t.match(y, /LOG_FILE messages: 1 OK, 0 ERROR, total 1 of 1/, 'without DIRECT the stream is read from its start')
  t.equal((await snapshotTree(dest.vfs))['whole/random.bin']?.data, (await snapshotTree(exp.vfs))['random.bin']?.data)
})

t.test('our manager: --compress brotli, verify reads it', async (t) => {
  const dir = t.testdir({})
  const pool = join(dir, 'pool')
  await Pool.label(pool, 'Z1', { capacity: 64 * 1024 * 1024 })
  const exp = await filled()
  const server = await startNdmpServer({ port: 0, host: '127.0.0.1', credentials: new Map([['dma', 'secret']]), exports: () => [exp], tapes: [{ name: pool, path: pool }], stateDir: join(dir, 'srv') })
  t.teardown(() => server.close())
  const state = join(dir, 'state')
  const service = await DmaService.open(state, driversFor(state))
  await writeFile(join(state, 'ndmp-auth'), '127.0.0.1 dma secret\n')
  const job = await service.wait((await service.start({ name: 'manual', spec: parseExport(`127.0.0.1:${server.port}:/exp`), pool, level: 0, compress: 'brotli' })).id)
  t.equal(job.state, 'done', job.error ?? 'done')
  t.equal(job.compress, 'brotli', 'the job record keeps the compression')
  t.ok(job.bytes < 700_000, `the mover moved the compressed stream (${job.bytes} bytes)`)
  const log = (await queryLogs(jobsDir(state), { job: job.id })).map((l) => l.message).join('\n')
  t.match(log, /the stream is brotli-compressed \(COMPRESS=brotli\)/)
  const v = await verifyPoolBackup(state, { job: job.id })
  t.match(v, { ok: true, files: 2, bytes: String(980_000 + 200_000) }, 'verify inflates and checks every file')
  t.ok(BigInt(v.streamBytes) < 700_000n)

  t.test('a partial restore reads the compressed stream whole, not by offset', async (t) => {
    const logs: string[] = []
    const out = await restoreExport({ stateDir: state, export: `127.0.0.1:${server.port}:/exp`, atNs: BigInt(Date.now() + 60_000) * 1_000_000n, paths: ['/random.bin'], to: '/exp/back', overwrite: false, onLog: (_l, m) => logs.push(m) })
    t.equal(out.job.state, 'done', out.job.error ?? logs.join('\n'))
    t.ok(logs.some((m) => /the stream is brotli-compressed: read from its start \(direct access needs the plain stream's offsets\)/.test(m)), 'the DMA says why')
    t.equal(out.reads, 1, 'no NOTIFY_DATA_READ by offset: one read of the whole stream')
    t.equal(out.bytesMoved, BigInt(job.bytes), 'the mover sent the whole compressed stream')
    const tree = await snapshotTree(exp.vfs)
    t.equal(tree['back/random.bin']?.data, tree['random.bin']?.data, 'random.bin restored')
    t.equal(tree['back/logs/app.log'], undefined, 'nothing else')
  })
})
