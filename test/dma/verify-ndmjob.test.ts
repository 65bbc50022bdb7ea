/*
 * tsnfs backup verify through ndmjob's own tape agent (`ndmjob -o daemon`, the NDMP SDK's): a
 * `file:` export holding one of our backup streams is backed up with ndmjob as the tape agent, so
 * the pool's tape file is in ndmjob's simulated-tape format, which only that agent reads back.
 * Verify without --tape reads that file as raw bytes and finds no stream of ours; with --tape it
 * reads the records back through the agent (TAPE_OPEN, mover WRITE mode, MOVER_READ) and every
 * file matches its recorded SHA-256. Skipped where ndmjob is not installed.
 */
import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { backupFormat } from '../../backup/index.ts'
import { backup } from '../../cli/backup.ts'
import { driversFor } from '../../dma/drivers/select.ts'
import { DmaService } from '../../dma/jobs/service.ts'
import type { VerifyReport } from '../../dma/jobs/verify.ts'
import { Pool } from '../../dma/pool/pool.ts'
import { parseExport } from '../../dma/schedule/export-spec.ts'
import { MemoryVfs } from '../../vfs/memory/memory-vfs.ts'
import { writeFile as vfsWrite } from '../backup/helpers.ts'
import { haveNdmjob, NDMJOB, ndmjobDaemon } from '../helpers/ndmjob.ts'

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = ''
  let err = ''
  const code = await backup(argv, { out: (s) => (out += s), err: (s) => (err += s) })
  return { code, out, err }
}

t.test('verify through ndmjob -o daemon as the tape agent', { skip: haveNdmjob ? false : `${NDMJOB} is not installed` }, async (t) => {
  const dir = t.testdir({})
  const { port } = await ndmjobDaemon(t, dir)
  const vfs = new MemoryVfs()
  await vfsWrite(vfs, 'one.txt', Buffer.from('one\n'))
  await vfsWrite(vfs, 'two.bin', Buffer.alloc(50_000, 2))
  const chunks: Buffer[] = []
  await backupFormat.writeBackup({ vfs, root: vfs.root(), live: false, name: '/m' }, { write: async (c) => { chunks.push(Buffer.from(c)) } }, { level: 0, base: null })
  await writeFile(join(dir, 'stream.tar'), Buffer.concat(chunks))
  const pool = join(dir, 'pool')
  await Pool.label(pool, 'N1', { capacity: 64 * 1024 * 1024 })
  const state = join(dir, 'state')
  const service = await DmaService.open(state, driversFor(state))
  await writeFile(join(state, 'ndmp-auth'), `* ndmp ndmp md5\n`)
  const agent = `127.0.0.1:${port}`
  const job = await service.wait((await service.start({ name: 'manual', spec: parseExport(`file:${join(dir, 'stream.tar')}`), tapeAgent: agent, pool, level: 0 })).id)
  t.match(job, { state: 'done', tapes: ['N1'], tapeAgent: agent }, job.error ?? 'backed up through ndmjob')

  const raw = await cli(['verify', job.id, '--state', state, '--json'])
  t.equal(raw.code, 1, 'the simulated tape read as a plain file is not our stream')
  t.match(JSON.parse(raw.out), { ok: false, indexed: false })
  const r = await cli(['verify', job.id, '--state', state, '--tape', agent, '--json'])
  t.equal(r.code, 0, r.out + r.err)
  t.match(JSON.parse(r.out) as VerifyReport, { ok: true, files: 2, bytes: '50004', tapes: ['N1'], mismatches: [], missing: [], indexed: true })
})
