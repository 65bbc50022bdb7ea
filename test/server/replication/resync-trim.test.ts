/*
 * Log trimming and the full resync it forces (issue 15 §3): the primary trims
 * its change log to what the standby acknowledged; a standby down while the
 * log was trimmed past its position (--log-keep) is resynced when it returns.
 */
import t from 'tap'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { Nfs3, S } from '../../helpers/local.ts'
import { caughtUp, makeTree, snapshot, startPair, until } from './resync-fixtures.ts'
import type { Pair } from './resync-fixtures.ts'

const seed = Number(process.env.REPL_SEED ?? Date.now() % 100_000)
t.comment(`seed ${seed} (REPL_SEED to repeat)`)

const last = (pair: Pair) => (): bigint => pair.repl.view().positions[0]?.applied ?? -1n
const resyncOf = (pair: Pair) => pair.repl.view().peers[0]?.resync

/** The first seq still in the primary's change log (its oldest segment's name). */
function logFirst(pair: Pair): bigint {
  const id = pair.repl.view().positions[0]?.exportId ?? -1
  const names = readdirSync(join(pair.primaryState, 'replication', String(id), 'log')).filter((n) => n.endsWith('.log')).sort()
  return BigInt(names[0]?.slice(0, 20) ?? '0')
}

t.test('a standby down while the log was trimmed past it is resynced on return; the log is trimmed to what it acknowledged', async (t) => {
  const dir = t.testdir({ export: {}, copy: {} })
  const exportPath = join(dir, 'export')
  makeTree(exportPath, seed + 7, 20, 3)
  const pair = await startPair(t, {
    exportPath, standbyRoot: join(dir, 'copy'), dir,
    primary: { logSegmentBytes: 4096, logKeepBytes: 16 * 1024, trimIntervalMs: 50, timeoutMs: 500 },
  })
  await until('the first resync', () => caughtUp(pair, last(pair)))
  const c = await Nfs3.connect(t, pair.server.port)
  const root = await c.mount(exportPath)
  let bad = 0
  for (let i = 0; i < 100; i++) if ((await c.create(root, `live-${String(i)}`)).status !== S.OK) bad++
  t.equal(bad, 0, '100 creates')
  await until('the standby acknowledged them', () => caughtUp(pair, last(pair)))
  await until('the log trimmed to what the standby has', () => logFirst(pair) > 50n)
  t.ok(logFirst(pair) <= last(pair)() + 1n, 'and no further')

  await pair.stopStandby()
  const down = pair.repl.view().peers[0]?.acked ?? 0n
  await until('the standby declared dead', () => pair.repl.view().peers[0]?.alive === false)
  for (let i = 0; i < 250; i++) {
    const made = await c.create(root, `while-down-${String(i)}`)
    if (made.fh !== undefined) await c.write(made.fh, 0n, Buffer.alloc(100, i & 0xff), 2)
  }
  t.ok(logFirst(pair) > down + 1n, `the log (from ${String(logFirst(pair))}) no longer holds the standby's position ${String(down)}`)
  await pair.startStandby()
  await until('the resync on return', () => (resyncOf(pair)?.count ?? 0) >= 2 && caughtUp(pair, last(pair)))
  t.same(snapshot(join(dir, 'copy')), snapshot(exportPath), 'identical after the resync')
})
