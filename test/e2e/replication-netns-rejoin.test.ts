/*
 * Issue 15 §5/§7 across hosts: the old primary rejoins as a standby and
 * converges. A sync primary (A), its standby (B, told to replicate to A once
 * it takes over) and a client writing and making stable through the service
 * address, each in a host of its own (test/helpers/repl-lab.ts). A is
 * SIGKILLed at a moment drawn from a printed seed and its host cut off; B
 * takes over (`tsnfs replication takeover` from the client's host) and the
 * address; the client goes on there through its old handles. A's host comes
 * back without the address (as a rebooted host would) and A starts as
 * `tsnfs standby --rejoin` on its state directory: B resyncs it (discarding
 * what A acknowledged only as UNSTABLE) and takes it into its sync set; the
 * client writes on. At the end A's and B's trees are the same byte for byte
 * and hold every byte the client was ever told was stable.
 */
import t from 'tap'
import { findCommand } from '../../server/replication/address.ts'
import { createReplLab, HEARTBEAT, missingStable, settledTrees, stableLines } from '../helpers/repl-lab.ts'
import { labSkipReason } from '../helpers/netns.ts'
import { prng } from '../helpers/prng.ts'

// Four tsnfs processes and a client start in the lab (tsx when dist/ is stale): room under load.
t.setTimeout(300_000)

const skip = labSkipReason() ?? (findCommand('arping') === null ? 'needs arping (Debian iputils-arping)' : null)

t.test('after a takeover the old primary rejoins as a standby: resynced, in the sync set, and the trees converge byte for byte', { skip: skip ?? false }, async (t) => {
  const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 1_000_000)
  t.comment(`seed ${String(seed)}`)
  const rnd = prng(seed)
  const r = await createReplLab(t, '10.236.0.0/24')
  const { lab } = r
  const b = await r.standbyB(['--standby', r.replA, '--sync', ...HEARTBEAT])
  await lab.addAddress('primary', r.vip)
  const a = r.serveA()
  await a.wait(/standby joined the sync set/, { stream: 'stderr', ms: 90_000 })
  const w = await r.writer(seed)
  const stableNow = (): number => stableLines(w.out()).at(-1)?.n ?? 0
  const moreStable = async (k: number, from = 0): Promise<void> => {
    await w.wait(new RegExp(`^stable ${String(stableNow() + k)} `, 'm'), { from, ms: 90_000 })
  }

  await moreStable(3 + Math.floor(rnd() * 12))
  t.comment(`A SIGKILLed at ${String(stableNow())} stable files`)
  a.child.kill('SIGKILL')
  await lab.linkDown('primary')
  await a.exited
  const took = await lab.exec('client', r.tsnfs('replication', 'takeover', r.replB, '--force'), { timeoutMs: 60_000 })
  t.match(took.stdout, /took over/, 'TAKEOVER answered')
  await b.wait(/took over \(epoch 2\)/, { ms: 60_000 })
  const outFailed = (await w.wait(/^failed .*\n/m, { ms: 60_000 })).index
  await w.wait(/^reconnected$/m, { from: outFailed, ms: 120_000 })
  await moreStable(3)
  const fromB = stableNow()

  // A's host returns without the service address (as after a reboot); A rejoins as B's standby.
  await lab.removeAddress('primary', r.vip)
  await lab.linkUp('primary')
  const errRejoin = b.err().length
  const a2 = await r.standbyA(['--rejoin', '--standby', r.replB, '--sync', ...HEARTBEAT])
  await b.wait(/standby joined the sync set/, { stream: 'stderr', from: errRejoin, ms: 120_000 })
  t.match(b.err().slice(errRejoin), /full resync/, 'B resynced A')
  // Stable after A joined B's sync set: these replies waited for A.
  await moreStable(3)
  const result = await w.stop()
  t.comment(`${String(result.stable)} files stable, ${String(result.stable - fromB)} of them written on B`)
  t.equal(result.stale, 0, 'no ESTALE through the takeover')
  t.equal(result.wrong, 0, 'every stable byte read back from B')
  const st = await lab.exec('client', r.tsnfs('replication', 'status', r.replA, '--json'), { timeoutMs: 60_000 })
  t.match(st.stdout, /"role":\s*"standby"/, 'A reports itself a standby')
  const trees = await settledTrees(r.copyB, r.exportPath)
  t.same(trees.b, trees.a, 'A\'s tree is B\'s: content, sizes, modes, owners, mtimes')
  t.same(missingStable(r.exportPath, result.files), [], 'every stable byte on A')
  t.same(missingStable(r.copyB, result.files), [], 'every stable byte on B')
  t.equal(a2.child.exitCode, null, 'A still runs, as a standby')
})
