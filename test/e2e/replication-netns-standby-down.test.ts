/*
 * Issue 15 §7 across hosts: a standby down for a while, then catching up.
 * A sync primary (A) and its standby (B) in hosts of their own, a client in
 * a third writing and making stable through the service address
 * (test/helpers/repl-lab.ts). B's process is SIGKILLed at a moment drawn
 * from a printed seed; A drops it after the heartbeat timeout and goes on
 * (README: a silent standby leaves the sync set, releasing the waiting
 * replies); the client writes on for a while; B is started again on its
 * state directory and catches up from its durable position through A's
 * change log (no full resync: the log was kept for it). Then A's and B's
 * trees are the same byte for byte and hold every stable byte.
 */
import t from 'tap'
import { count, createReplLab, HEARTBEAT_TIMEOUT_MS, inSyncSet, missingStable, settledTrees, stableLines, until } from '../helpers/repl-lab.ts'
import { labSkipReason } from '../helpers/netns.ts'
import { prng } from '../helpers/prng.ts'

// Four tsnfs processes and a client start in the lab (tsx when dist/ is stale): room under load.
t.setTimeout(300_000)

t.test('a standby SIGKILLed while the client writes, down for a while, restarted: it catches up from the log and the trees converge', { skip: labSkipReason() ?? false }, async (t) => {
  const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 1_000_000)
  t.comment(`seed ${String(seed)}`)
  const rnd = prng(seed)
  const r = await createReplLab(t, '10.235.0.0/24')
  const b = await r.standbyB()
  await r.lab.addAddress('primary', r.vip)
  const a = r.serveA()
  await a.wait(/standby joined the sync set/, { stream: 'stderr', ms: 90_000 })
  // B's first HELLO brought a full resync of the (empty) export; after that, catch-up only.
  const errStart = a.err().length
  const w = await r.writer(seed)
  const stableNow = (): number => stableLines(w.out()).at(-1)?.n ?? 0
  const moreStable = async (k: number, from = 0): Promise<void> => {
    await w.wait(new RegExp(`^stable ${String(stableNow() + k)} `, 'm'), { from, ms: 90_000 })
  }

  const killAt = 2 + Math.floor(rnd() * 10)
  await moreStable(killAt)
  // B is in the sync set right before the kill (a loaded machine may have dropped it for a moment).
  t.ok(await until(() => inSyncSet(a.err()), 60_000), 'B in the sync set before the kill')
  const errAt = a.err().length
  const outAt = w.out().length
  t.comment(`B SIGKILLed at ${String(stableNow())} stable files`)
  b.child.kill('SIGKILL')
  await b.exited
  await a.wait(/standby not answering; dropped from the sync set/, { stream: 'stderr', from: errAt, ms: 60_000 })
  const downFor = 10 + Math.floor(rnd() * 40)
  t.comment(`${String(downFor)} more files while B is down`)
  await moreStable(downFor, outAt)
  const slowest = Math.max(...stableLines(w.out(), outAt).map((l) => l.ms))
  t.ok(slowest >= HEARTBEAT_TIMEOUT_MS / 2, `a stable reply waited for B to be dropped (slowest ${String(slowest)} ms)`)
  t.equal(count(a.err().slice(errAt), /standby joined the sync set/g), 0, 'B not back while down')

  const errUp = a.err().length
  const b2 = await r.standbyB()
  await a.wait(/standby joined the sync set/, { stream: 'stderr', from: errUp, ms: 90_000 })
  // Stable after B rejoined: these replies waited for B again.
  await moreStable(3)
  const result = await w.stop()
  t.comment(`${String(result.stable)} files stable`)
  t.equal(result.stale, 0, 'no ESTALE')
  t.equal(result.wrong, 0, 'every stable byte read back from A')
  const trees = await settledTrees(r.exportPath, r.copyB)
  t.same(trees.b, trees.a, 'B\'s tree is A\'s: content, sizes, modes, owners, mtimes')
  t.equal(Object.keys(trees.b).length, result.stable + 1, 'every file the client made stable, and the root')
  t.same(missingStable(r.copyB, result.files), [], 'every stable byte on B')
  t.notMatch(a.err().slice(errStart), /full resync/, 'B caught up from the log: no full resync')
  t.equal(b2.child.exitCode, null, 'B still runs')
})
