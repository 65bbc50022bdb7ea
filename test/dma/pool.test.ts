/*
 * Pools: labelling, allocation in label order, the label asked for when none is left, and
 * recycling by retention (keep N chains of each export; failed backups go first).
 */
import t from 'tap'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Pool } from '../../dma/pool/pool.ts'
import { tapePath } from '../../dma/pool/index-file.ts'

t.test('label, allocate, ask for a new label', async (t) => {
  const dir = join(t.testdir({}), 'main')
  await t.rejects(Pool.open(dir), { code: 'DMA_NO_POOL' })
  t.match(await Pool.label(dir, 'A1', { capacity: 1000, keepChains: 1 }), { label: 'A1', capacity: 1000, state: 'blank' })
  await Pool.label(dir, 'A2')
  await t.rejects(Pool.label(dir, 'A2'), { code: 'DMA_LABEL_EXISTS' })
  await t.rejects(Pool.label(dir, '../x'), { code: 'DMA_BAD_LABEL' })
  await t.rejects(Pool.label(dir, '-x'), { code: 'DMA_BAD_LABEL' })
  const pool = await Pool.open(dir)
  t.equal((await stat(tapePath(dir, 'A1'))).size, 0, 'a tape file is made empty')
  await t.rejects(pool.allocate('1'), { code: 'DMA_JOB_STATE' }, 'no backup begun')
  await pool.beginBackup('1', 'nas:/x', 0, new Date('2026-01-04T00:00:00Z'))
  t.strictSame(await pool.allocate('1'), { label: 'A1', path: tapePath(dir, 'A1') })
  t.strictSame(await pool.peek(), { label: 'A2', isNew: false })
  await pool.markFull('A1', 1000)
  t.strictSame(await pool.allocate('1'), { label: 'A2', path: tapePath(dir, 'A2') })
  t.strictSame(await pool.allocate('1'), { needs: 'main-001', isNew: true }, 'none left: the next label to create')
  await pool.endBackup('1', 'done', 1500)
  const index = await pool.index()
  t.strictSame(index.tapes.map((x) => [x.label, x.state, x.used]), [['A1', 'full', 1000], ['A2', 'used', 0]])
  t.match(index.backups, [{ job: '1', status: 'done', tapes: ['A1', 'A2'], bytes: 1500 }])
  await writeFile(join(dir, 'pool.json'), '{"tapes": 1}')
  await t.rejects(Pool.open(dir), { code: 'DMA_POOL_SYNTAX' })
})

t.test('retention keeps N chains per export', async (t) => {
  const dir = join(t.testdir({}), 'p')
  for (const l of ['T1', 'T2', 'T3', 'T4']) await Pool.label(dir, l, { capacity: 100, keepChains: 1 })
  const pool = await Pool.open(dir)
  const backup = async (job: string, exp: string, level: number, day: number, status: 'done' | 'failed' = 'done'): Promise<string> => {
    await pool.beginBackup(job, exp, level, new Date(Date.UTC(2026, 0, day)))
    const got = await pool.allocate(job)
    if (!('label' in got)) throw new Error(`no tape for ${job}`)
    await writeFile(got.path, `data of ${job}`)
    await pool.endBackup(job, status, 10)
    return got.label
  }
  t.equal(await backup('1', 'nas:/a', 0, 1), 'T1')
  t.equal(await backup('2', 'nas:/a', 1, 2), 'T2')
  t.equal(await backup('3', 'nas:/b', 0, 2, 'failed'), 'T3')
  t.equal(await backup('4', 'nas:/a', 0, 8), 'T4', 'a second chain of /a begins')
  // No blank tape: the failed backup's tape goes first, then the older chain of /a, oldest tape first.
  t.equal(await backup('5', 'nas:/a', 1, 9), 'T3')
  t.equal(await readFile(tapePath(dir, 'T3'), 'utf8'), 'data of 5', 'written over')
  t.equal(await backup('6', 'nas:/a', 2, 10), 'T1')
  t.equal(await backup('7', 'nas:/a', 3, 11), 'T2')
  t.strictSame((await pool.index()).backups.map((b) => b.job), ['4', '5', '6', '7'], 'the recycled backups are forgotten')
  await pool.beginBackup('8', 'nas:/a', 4, new Date(Date.UTC(2026, 0, 12)))
  t.strictSame(await pool.allocate('8'), { needs: 'p-001', isNew: true }, 'the only chain is kept whole')
})
