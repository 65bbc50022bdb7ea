/*
 * The NDMP job driver against an NDMP agent nobody here wrote: Debian's ndmjob (the NDMP SDK's
 * reference implementation) as the tape agent (`ndmjob -o daemon`). A file: export with
 * tape=HOST:PORT: the job authorizes (STATE/ndmp-auth), opens the pool's tape file on the agent,
 * sets the mover listening and streams the file into it; the agent's LOG posts land in the job
 * log; the mover halting on the closed connection ends the job done, with the bytes the mover
 * moved (whole 10240-byte records). Bad credentials fail the job with the agent's NDMP error.
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { driversFor } from '../../dma/drivers/select.ts'
import { queryLogs } from '../../dma/jobs/log.ts'
import { jobsDir } from '../../dma/jobs/registry.ts'
import { DmaService } from '../../dma/jobs/service.ts'
import { Pool } from '../../dma/pool/pool.ts'
import { parseExport } from '../../dma/schedule/export-spec.ts'
import { haveNdmjob, NDMJOB, ndmjobDaemon } from '../helpers/ndmjob.ts'

t.test('a backup through ndmjob as the tape agent', { skip: haveNdmjob ? false : `${NDMJOB} is not installed (Debian amanda-server)` }, async (t) => {
  const dir = t.testdir({})
  const { port } = await ndmjobDaemon(t, dir)
  const data = randomBytes(250_000)
  await writeFile(join(dir, 'data.bin'), data)
  const pool = join(dir, 'pool')
  await Pool.label(pool, 'N1', { capacity: 64 * 1024 * 1024 })
  const state = join(dir, 'state')
  const service = await DmaService.open(state, driversFor(state))

  await writeFile(join(state, 'ndmp-auth'), `127.0.0.1:${port} ndmp wrong text\n`)
  const refused = await service.wait((await service.start({ name: 'manual', spec: parseExport(`file:${join(dir, 'data.bin')}`), tapeAgent: `127.0.0.1:${port}`, pool, level: 0 })).id)
  t.match(refused, { state: 'failed', error: /0x901: NDMP error 4/ }, 'CONNECT_CLIENT_AUTH refused: NDMP_NOT_AUTHORIZED_ERR')

  await writeFile(join(state, 'ndmp-auth'), `# the SDK's built-in account\n* ndmp ndmp md5\n`)
  const job = await service.wait((await service.start({ name: 'manual', spec: parseExport(`file:${join(dir, 'data.bin')}`), tapeAgent: `127.0.0.1:${port}`, pool, level: 0 })).id)
  t.match(job, { state: 'done', bytes: 256_000, tapes: ['N1'] }, '25 records of 10240 bytes moved')
  t.ok((await stat(join(pool, 'N1.tape'))).size >= 250_000, 'the agent wrote the pool\'s tape file')
  const index = await (await Pool.open(pool)).index()
  t.match(index.tapes, [{ label: 'N1', state: 'used', used: 256_000 }])
  const log = (await queryLogs(jobsDir(state), { job: job.id })).map((l) => l.message)
  t.ok(log.some((m) => m.startsWith(`127.0.0.1:${port}: `)), 'the agent\'s LOG_MESSAGE posts are in the job log')
  t.match(log.at(-1), /^done: 256000 bytes/)
})
