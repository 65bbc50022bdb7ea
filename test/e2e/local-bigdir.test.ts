/*
 * A 100,000-entry host directory through a local export (issue 3 point 6):
 * READDIR (count 8192) and READDIRPLUS (maxcount 32768) page through it
 * completely, each name exactly once, nfs-ls lists every entry, and the
 * backend reads the directory only a few times (snapshots reused across
 * pages, not one scan per page).
 */
import t from 'tap'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BACKENDS } from '../../server/backends.ts'
import type { BackendFactory } from '../../server/backends.ts'
import { LocalVfs } from '../../vfs/local/local-vfs.ts'
import { Nfs3 } from '../helpers/local.ts'
import { run, startServer } from '../helpers/server.ts'

const N = 100_000

// READDIRPLUS of 100,000 entries takes tens of seconds under coverage (see the comments this test
// prints); the root object's timeout tells the tap runner to allow this file more than the 120 s default.
t.setTimeout(300_000)

t.test('READDIR, READDIRPLUS and nfs-ls page through 100,000 entries exactly once', async (t) => {
  // Not t.testdir(): a private directory, so a concurrent run of this file (another checkout's
  // `npm test` in the same tree) cannot remove or refill it under us.
  const dir = fs.mkdtempSync(join(tmpdir(), 'tsnfs-bigdir-'))
  t.teardown(() => {
    fs.rmSync(dir, { recursive: true, force: true })
  })
  let t0 = Date.now()
  // One shell pipeline makes the files fast (xargs batches thousands of names per touch).
  execFileSync('sh', ['-c', `seq 1 ${N} | sed 's/^/entry-/' | xargs touch`], { cwd: dir })
  t.comment(`created ${N} files on the host in ${Date.now() - t0} ms`)

  const opened: LocalVfs[] = []
  const recording: BackendFactory = (exp, ctx) => {
    const vfs = new LocalVfs({ root: exp.path, stateDir: join(ctx.stateDir, 'local', String(exp.id)) })
    opened.push(vfs)
    return vfs
  }
  const backends = new Map<string, BackendFactory>([...BACKENDS, ['local', recording]])
  const s = await startServer(t, `${dir} *(rw,insecure,no_root_squash)\n`, { backends })
  t.equal(opened.length, 1, 'the server opened one LocalVfs')
  const vfs = opened[0]
  if (vfs === undefined) return
  const nfs = await Nfs3.connect(t, s.port)
  const root = await nfs.mount(dir)
  const expected = new Set<string>()
  for (let i = 1; i <= N; i++) expected.add(`entry-${i}`)

  // The three listings run at once: each is a chain of round trips waiting on the host's file
  // system, so together they take little more than the slowest (READDIRPLUS) alone.
  const builds0 = vfs.stats().snapshotBuilds
  const timed = async <R>(f: () => Promise<R>): Promise<{ r: R; ms: number }> => {
    const t1 = Date.now()
    const r = await f()
    return { r, ms: Date.now() - t1 }
  }
  t0 = Date.now()
  const [plain, plus, ls] = await Promise.all([
    timed(() => nfs.listAll(root, 8192)),
    timed(() => nfs.listAllPlus(root, 8192, 32768)),
    timed(() => run('nfs-ls', [s.url(dir)], { maxBuffer: 256 * 1024 * 1024 })),
  ])
  t.comment(`all three listings: ${Date.now() - t0} ms`)

  const names = plain.r.names.filter((n) => n !== '.' && n !== '..')
  t.equal(names.length, N, `READDIR: ${N} names in ${plain.r.pages} pages`)
  t.equal(new Set(names).size, N, 'each exactly once')
  t.ok(names.every((n) => expected.has(n)), 'and only the real names')
  t.comment(`READDIR count 8192: ${plain.r.pages} pages in ${plain.ms} ms`)

  const plusNames = plus.r.names.filter((n) => n !== '.' && n !== '..')
  t.equal(plusNames.length, N, `READDIRPLUS: ${N} names in ${plus.r.pages} pages`)
  t.equal(new Set(plusNames).size, N, 'each exactly once')
  t.ok(plusNames.every((n) => expected.has(n)), 'and only the real names')
  t.ok(plus.r.handles >= N, `a handle with every entry (${plus.r.handles})`)
  t.comment(`READDIRPLUS maxcount 32768: ${plus.r.pages} pages in ${plus.ms} ms`)

  const lines = ls.r.stdout.split('\n').filter((l) => l !== '')
  t.equal(lines.length, N, 'nfs-ls prints one line per entry')
  t.equal(new Set(lines.map((l) => l.slice(l.lastIndexOf(' ') + 1))).size, N, 'with every name once')
  t.comment(`nfs-ls: ${ls.ms} ms`)

  const builds = vfs.stats().snapshotBuilds - builds0
  t.ok(builds <= 4, `the directory was read ${builds} times for ${plain.r.pages + plus.r.pages} pages and nfs-ls`)
})
