/*
 * Issue 15 §7 across hosts: a standby restarted mid-resync. A primary (A)
 * whose export already holds a tree of some thousand files before
 * replication, and a new standby (B), each in a host of its own
 * (test/helpers/repl-lab.ts). B's first HELLO brings a full resync (README:
 * "a new standby (which also copies an export that held files before
 * replication)"), long enough to be caught in the middle: B is SIGKILLed
 * once its copy holds a share of the files drawn from a printed seed. A says
 * the resync was interrupted ("it starts over on the next connection"); B is
 * started again on its state directory, half a copy in place, and the resync
 * runs again to its end: B joins the sync set and A's and B's trees are the
 * same byte for byte.
 */
import t from 'tap'
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { count, createReplLab, settledTrees, until } from '../helpers/repl-lab.ts'
import { labSkipReason } from '../helpers/netns.ts'
import { prng } from '../helpers/prng.ts'

// Three tsnfs processes start in the lab (tsx when dist/ is stale) and a tree is copied twice: room under load.
t.setTimeout(300_000)

const DIRS = 40
const FILES_PER_DIR = 60

/** Files under `root`, one level of directories deep (how the tree below is laid out). */
function filesIn(root: string): number {
  let n = 0
  let dirs: string[]
  try {
    dirs = readdirSync(root)
  } catch {
    return 0
  }
  for (const d of dirs) {
    try {
      n += readdirSync(join(root, d)).length
    } catch {
      // A file at the top, or a directory the standby is still making: counted on the next look.
    }
  }
  return n
}

t.test('a standby SIGKILLed in the middle of its full resync and restarted: the resync runs again to its end and the trees are equal', { skip: labSkipReason() ?? false }, async (t) => {
  const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 1_000_000)
  t.comment(`seed ${String(seed)}`)
  const rnd = prng(seed)
  const r = await createReplLab(t, '10.241.0.0/24')

  // The tree the export holds before replication: sizes from the seed, content named for the file.
  let bytes = 0
  for (let d = 0; d < DIRS; d++) {
    const dir = join(r.exportPath, `d${String(d)}`)
    mkdirSync(dir)
    for (let f = 0; f < FILES_PER_DIR; f++) {
      const size = Math.floor(rnd() * 48 * 1024)
      writeFileSync(join(dir, `f${String(f)}`), Buffer.alloc(size, `d${String(d)}/f${String(f)} `))
      bytes += size
    }
  }
  const total = DIRS * FILES_PER_DIR
  t.comment(`${String(total)} files, ${String(Math.round(bytes / 1048576))} MiB before replication`)

  const b = await r.standbyB()
  await r.lab.addAddress('primary', r.vip)
  const a = r.serveA()
  // B's copy holds between a tenth and a half of the files: the resync is under way, far from its end.
  const killAt = Math.floor(total * (0.1 + rnd() * 0.4))
  t.ok(await until(() => filesIn(r.copyB) >= killAt || b.child.exitCode !== null, 120_000), `B's copy reached ${String(killAt)} files`)
  t.equal(b.child.exitCode, null, 'B ran until the kill')
  const errAt = a.err().length
  b.child.kill('SIGKILL')
  await b.exited
  const copied = filesIn(r.copyB)
  t.comment(`B SIGKILLed with ${String(copied)} of ${String(total)} files in its copy`)
  t.ok(copied < total, 'B was killed before it had every file')
  await a.wait(/full resync interrupted; it starts over on the next connection/, { stream: 'stderr', from: errAt, ms: 60_000 })
  t.equal(count(a.err(), /full resync done/g), 0, 'A never finished the first resync')
  t.equal(count(a.err(), /standby joined the sync set/g), 0, 'B never joined before the kill')

  const errUp = a.err().length
  const b2 = await r.standbyB()
  await a.wait(/standby joined the sync set/, { stream: 'stderr', from: errUp, ms: 120_000 })
  t.match(a.err().slice(errUp), /full resync started[^\n]*\n(?:.*\n)*?.*full resync done/, 'A ran the resync again, to its end')
  const st = await r.lab.exec('client', r.tsnfs('replication', 'status', r.replB, '--json'), { timeoutMs: 60_000 })
  t.match(st.stdout, /"role":\s*"standby"/, 'B reports itself a standby')
  const s = await settledTrees(r.exportPath, r.copyB)
  t.equal(Object.keys(s.a).length, total + DIRS + 1, 'A\'s tree is the one made before replication')
  t.same(s.b, s.a, 'B\'s tree is A\'s: content, sizes, modes, owners, mtimes')
  t.equal(b2.child.exitCode, null, 'B still runs')
  t.equal(a.child.exitCode, null, 'A still runs')
})
