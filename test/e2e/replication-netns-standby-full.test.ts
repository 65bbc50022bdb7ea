/*
 * Issue 15 §7 across hosts: a standby full (NOSPC). A sync primary (A) and
 * its standby (B) in hosts of their own, a client in a third writing and
 * making stable through the service address (test/helpers/repl-lab.ts); B's
 * copy of the export is a small tmpfs (size=2m, mounted by the test, unmounted
 * at teardown), A's is on the ordinary disk. The client writes past what B
 * can hold: B marks the export failed (its backend says ENOSPC; the standby
 * answers REPL_NOSPC), A stops shipping it to B and takes B out of the sync
 * set (releasing the replies waiting for it), and goes on serving: stable
 * replies continue, every stable byte is on A, `replication status` shows B
 * as `failed: NOSPC`.
 */
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { count, createReplLab, missingStable, stableLines } from '../helpers/repl-lab.ts'
import { labSkipReason } from '../helpers/netns.ts'

// Three tsnfs processes and a client start in the lab (tsx when dist/ is stale): room under load.
t.setTimeout(300_000)

/** B's room: some tens of the writer's files (up to 90 KB each), so it fills in seconds. */
const B_SIZE = '2m'

t.test('a standby whose export fills up (ENOSPC) is marked failed and dropped; the primary goes on serving stable replies', { skip: labSkipReason() ?? false }, async (t) => {
  const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 1_000_000)
  t.comment(`seed ${String(seed)}`)
  const r = await createReplLab(t, '10.242.0.0/24')
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${B_SIZE}`, 'tsnfs-lab-full', r.copyB])
  // Runs before the lab's teardown (tap: last registered first), while B may still hold it: a lazy
  // unmount detaches it now, the memory goes with B's mount namespace, and the directory is empty to remove.
  t.teardown(() => {
    execFileSync('umount', ['-l', r.copyB])
  })
  const b = await r.standbyB()
  await r.lab.addAddress('primary', r.vip)
  const a = r.serveA()
  await a.wait(/standby joined the sync set/, { stream: 'stderr', ms: 90_000 })
  const w = await r.writer(seed)
  const stableNow = (): number => stableLines(w.out()).at(-1)?.n ?? 0

  await a.wait(/standby out of space; export no longer shipped to it/, { stream: 'stderr', ms: 120_000 })
  await b.wait(/standby out of space; export marked failed/, { stream: 'stderr', ms: 60_000 })
  const atFull = stableNow()
  const outAt = w.out().length
  t.comment(`B full at ${String(atFull)} stable files`)
  t.match(a.err(), /"reason":"failed: NOSPC"[^\n]*standby left the sync set/, 'A took B out of the sync set for NOSPC')
  // The primary goes on: more files made stable after B was dropped.
  await w.wait(new RegExp(`^stable ${String(atFull + 10)} `, 'm'), { from: outAt, ms: 90_000 })
  const st = await r.lab.exec('client', r.tsnfs('replication', 'status', `${r.lab.address('primary')}:2049`, '--json'), { timeoutMs: 60_000 })
  // A primary answers the replication program's STATUS on its NFS port.
  const status = JSON.parse(st.stdout) as { role: string; peers: { address: string; state: string }[] }
  t.equal(status.role, 'primary', 'A is the primary')
  t.same(status.peers.map((p) => [p.address, p.state]), [[r.replB, 'failed: NOSPC']], 'A\'s status says B failed: NOSPC')
  const result = await w.stop()
  t.comment(`${String(result.stable)} files stable`)
  t.ok(result.stable >= atFull + 10, 'stable replies went on after B was full')
  t.equal(result.stale, 0, 'no ESTALE')
  t.equal(result.wrong, 0, 'every stable byte read back from A')
  t.same(missingStable(r.exportPath, result.files), [], 'every stable byte on A')
  t.equal(count(w.out(), /^failed /gm), 0, 'no call failed')
  t.equal(b.child.exitCode, null, 'B still runs')
  t.equal(a.child.exitCode, null, 'A still runs')
})
