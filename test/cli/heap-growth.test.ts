/*
 * tsnfs serve --heap-growth PERCENT|off: a bad value is refused with the exact message; the default
 * fixes V8's growing factor at 50 % and `off` leaves V8's own, both shown by /metrics
 * (common/heap-growth.ts, cli/serve.ts).
 */
import t from 'tap'
import type { Test } from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { serveProcess, tsnfs } from './cli.ts'

async function stateDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tsnfs-heap-growth-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

t.test('a bad --heap-growth is refused with the exact message', async (t) => {
  // Few: each is a node process started (CI runs this beside ~400 other files).
  for (const bad of ['0', '50%']) {
    const r = await tsnfs(['serve', '--port', '0', '--state-dir', await stateDir(t), '--heap-growth', bad])
    t.equal(r.code, 1, JSON.stringify(bad))
    t.match(r.stderr, `--heap-growth: not a whole percentage from 1 (or off): ${bad}`, JSON.stringify(bad))
  }
})

t.test('the server runs with 50 % by default, the value given, or V8\'s own factor with off', async (t) => {
  for (const [args, want] of [[[], 50], [['--heap-growth', '25'], 25], [['--heap-growth', 'off'], 0]] as const) {
    const s = await serveProcess(t, ['--port', '0', '--host', '127.0.0.1', '--state-dir', await stateDir(t), '--no-rpcbind',
      '--metrics', '127.0.0.1:0', '--log-level', 'warn', ...args])
    const at = /metrics: http:\/\/(127\.0\.0\.1:\d+)\/metrics\n/.exec(s.banner)?.[1]
    if (at === undefined) throw new Error(`no metrics URL in the banner: ${s.banner}`)
    const text = await (await fetch(`http://${at}/metrics`)).text()
    t.equal(/^tsnfs_memory_heap_growth_percent (\d+)$/m.exec(text)?.[1], String(want), `${args.join(' ') || 'default'}: ${String(want)}`)
    s.child.kill('SIGTERM')
    t.equal(await s.exit, 0)
  }
})
