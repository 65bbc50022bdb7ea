/*
 * A listing resumed at a cookie reads the leaves as they are now: names removed before the rest
 * is read never show up, names added at or after the cookie do. (The leaves of the last pages are
 * kept parsed and hashed for the next page, vfs/engine/reader/leaf-cache.ts: a leaf changed in
 * between must be read again, never answered from what was kept.)
 */
import t from 'tap'
import { freshEngine } from './engine-helpers.ts'

const owner = { uid: 1000, gid: 100 }

t.test('changes between pages are seen: removed names gone, added ones after the cookie listed', async (t) => {
  const e = await freshEngine(t, 'engine-readdir-resume')
  const { ref: dir } = await e.mkdir(e.root(), Buffer.from('d'), {}, owner)
  for (let i = 0; i < 1500; i++) await e.create(dir, Buffer.from(`entry-${i}`), { how: 'guarded', attr: {} }, owner)
  let rounds = 0
  let resurrected = 0
  let missedNew = 0
  for (let cookie = 0n, round = 0; ; round++) {
    // Two pages at the same cookie: the second is answered from the kept leaves if nothing changed.
    const page = await e.readdir(dir, cookie, 40)
    const again = await e.readdir(dir, cookie, 40)
    t.same(again.entries.map((x) => [x.name.toString(), x.cookie]), page.entries.map((x) => [x.name.toString(), x.cookie]), `round ${round}: the same page twice`)
    const last = page.entries.at(-1)
    if (page.eof || last === undefined) break
    cookie = last.cookie
    // Between pages: every still-unlisted name of the next page goes, and new names come.
    const next = await e.readdir(dir, cookie, 40)
    const gone = next.entries.map((x) => x.name).filter((n) => n.toString().startsWith('entry-'))
    for (const n of gone) await e.remove(dir, n)
    const added = Array.from({ length: 5 }, (_, i) => Buffer.from(`added-${round}-${i}`))
    for (const n of added) await e.create(dir, n, { how: 'guarded', attr: {} }, owner)
    // Read the rest now: nothing removed may appear; each added name at or after the cookie must.
    const rest = new Set<string>()
    for (let c = cookie; ;) {
      const p = await e.readdir(dir, c, 200)
      for (const x of p.entries) rest.add(x.name.toString())
      const l = p.entries.at(-1)
      if (p.eof || l === undefined) break
      c = l.cookie
    }
    resurrected += gone.filter((n) => rest.has(n.toString())).length
    const whole = await e.readdir(dir, 0n, 4096)
    const afterCookie = new Set(whole.entries.filter((x, i) => i > 0 && (whole.entries[i - 1]?.cookie ?? 0n) >= cookie).map((x) => x.name.toString()))
    missedNew += added.filter((n) => afterCookie.has(n.toString()) && !rest.has(n.toString())).length
    rounds++
    if (rounds >= 8) break
  }
  t.equal(resurrected, 0, `no removed name listed again (${rounds} rounds)`)
  t.equal(missedNew, 0, 'every added name at or after the cookie listed')
})
