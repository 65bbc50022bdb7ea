/*
 * Full resync while things happen (issue 15 §3): a client keeps writing,
 * renaming (across directories, so objects move between walked and unwalked
 * parts of the tree) and removing through the primary during the resync, and
 * the trees are identical at the end.
 */
import t from 'tap'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { Nfs3, S } from '../../helpers/local.ts'
import { prng } from '../../helpers/prng.ts'
import { caughtUp, makeTree, snapshot, startPair, until } from './resync-fixtures.ts'
import type { Pair } from './resync-fixtures.ts'

const seed = Number(process.env.REPL_SEED ?? Date.now() % 100_000)
t.comment(`seed ${seed} (REPL_SEED to repeat)`)

const last = (pair: Pair) => (): bigint => pair.repl.view().positions[0]?.applied ?? -1n
const resyncOf = (pair: Pair) => pair.repl.view().peers[0]?.resync

t.test('a client writing, renaming and removing during the resync: identical trees at the end', async (t) => {
  const dir = t.testdir({ export: {}, copy: {} })
  const exportPath = join(dir, 'export')
  makeTree(exportPath, seed, 150, 20, 40_000)
  const pair = await startPair(t, { exportPath, standbyRoot: join(dir, 'copy'), dir })
  const rnd = prng(seed)
  const c = await Nfs3.connect(t, pair.server.port)
  const root = await c.mount(exportPath)
  const dirs = [root]
  for (let i = 0; i < 20; i++) dirs.push(await c.walk(root, ...pathOf(exportPath, `d${String(i)}`)))
  let ops = 0
  let during = 0
  const mine: { dir: Buffer; name: string }[] = []
  // Until the resync is over, and a little more (those go by APPEND).
  const end = { after: Number.POSITIVE_INFINITY }
  while (Date.now() < end.after && ops < 3000) {
    const r = resyncOf(pair)
    if (r?.running === true) during++
    if (r !== undefined && r.count >= 1 && !r.running && end.after === Number.POSITIVE_INFINITY) end.after = Date.now() + 300
    const d = dirs[Math.floor(rnd() * dirs.length)] ?? root
    const k = rnd()
    ops++
    if (k < 0.4 || mine.length < 4) {
      const name = `n${String(ops)}`
      const made = await c.create(d, name)
      if (made.status !== S.OK || made.fh === undefined) continue
      await c.write(made.fh, 0n, Buffer.alloc(1 + Math.floor(rnd() * 9000), ops & 0xff), k < 0.2 ? 2 : 0)
      mine.push({ dir: d, name })
    } else if (k < 0.7) {
      // Across directories: from anywhere to anywhere.
      const i = Math.floor(rnd() * mine.length)
      const m = mine[i]
      const to = dirs[Math.floor(rnd() * dirs.length)] ?? root
      if (m === undefined) continue
      const name = `m${String(ops)}`
      if ((await c.rename(m.dir, m.name, to, name)) === S.OK) mine[i] = { dir: to, name }
    } else if (k < 0.8) {
      // A pre-existing directory moved under another (a subtree moves).
      const from = Math.floor(rnd() * 20)
      const to = dirs[Math.floor(rnd() * dirs.length)] ?? root
      await c.rename(root, `d${String(from)}`, to, `moved${String(ops)}`)
    } else {
      const i = Math.floor(rnd() * mine.length)
      const m = mine[i]
      if (m !== undefined && (await c.remove(m.dir, m.name)) === S.OK) mine.splice(i, 1)
    }
  }
  t.ok(during > 0, `${String(during)} of ${String(ops)} client calls ran during the resync`)
  await until('the standby caught up', () => caughtUp(pair, last(pair)))
  t.same(snapshot(join(dir, 'copy')), snapshot(exportPath), 'trees identical after the resync and the changes during it')
})

/** The path components of `d` under the export (the tree's directories nest at random). */
function pathOf(exportPath: string, name: string): string[] {
  const found = findDir(exportPath, name)
  if (found === null) throw new Error(`no directory ${name}`)
  return found
}

function findDir(root: string, name: string): string[] | null {
  for (const e of readdirSync(root, { withFileTypes: true })) {
    if (!e.isDirectory()) continue
    if (e.name === name) return [name]
    const below = findDir(join(root, e.name), name)
    if (below !== null) return [e.name, ...below]
  }
  return null
}
