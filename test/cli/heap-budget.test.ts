/*
 * tsnfs serve --heap-budget SIZE|off: a bad value is refused with the size parser's message; a
 * good one starts the budget, whose collections /metrics counts (common/heap-budget.ts).
 */
import t from 'tap'
import type { Test } from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { serveProcess, tsnfs } from './cli.ts'

async function stateDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tsnfs-heap-budget-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

async function metrics(at: string): Promise<string> {
  const r = await fetch(`http://${at}/metrics`)
  return r.text()
}

t.test('a bad --heap-budget is refused with the exact message', async (t) => {
  for (const bad of ['lots', '1.5M', '1T', 'of']) {
    const r = await tsnfs(['serve', '--port', '0', '--state-dir', await stateDir(t), '--heap-budget', bad])
    t.equal(r.code, 1, bad)
    t.match(r.stderr, `--heap-budget: not a size in bytes (digits, optionally K, M or G): ${bad}`, bad)
  }
})

t.test('a budget below any heap collects while serving; off collects never', async (t) => {
  for (const [value, collects] of [['1M', true], ['off', false]] as const) {
    const s = await serveProcess(t, ['--port', '0', '--host', '127.0.0.1', '--state-dir', await stateDir(t), '--no-rpcbind',
      '--metrics', '127.0.0.1:0', '--log-level', 'warn', '--heap-budget', value])
    const at = /metrics: http:\/\/(127\.0\.0\.1:\d+)\/metrics\n/.exec(s.banner)?.[1]
    if (at === undefined) throw new Error(`no metrics URL in the banner: ${s.banner}`)
    const count = async (): Promise<number> => Number(/^tsnfs_memory_budget_collections_total (\d+)$/m.exec(await metrics(at))?.[1] ?? NaN)
    if (collects) {
      // The check runs once a second: poll with a bound (60 s) until one has collected.
      let n = await count()
      for (let i = 0; i < 600 && n === 0; i++) {
        await new Promise((resolve) => { setTimeout(resolve, 100) })
        n = await count()
      }
      t.ok(n >= 1, `--heap-budget ${value}: collections counted (${String(n)})`)
    } else {
      // Twice the check interval, polled: still none.
      for (let i = 0; i < 25; i++) await new Promise((resolve) => { setTimeout(resolve, 100) })
      t.equal(await count(), 0, `--heap-budget ${value}: none`)
    }
    s.child.kill('SIGTERM')
    t.equal(await s.exit, 0)
  }
})
