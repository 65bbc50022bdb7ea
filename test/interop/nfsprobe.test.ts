/*
 * ../shared/tools/nfsprobe conform: libnfs-based conformance checks (mount,
 * every procedure, readdir paging, rename, links, exclusive create, unstable
 * writes + COMMIT ...). Built here from source so the checkout needs nothing
 * but gcc and libnfs-dev (installed by .ci/run).
 */
import t from 'tap'
import { existsSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { run, startServer } from '../helpers/server.ts'

const source = resolve(dirname(fileURLToPath(import.meta.url)), '../../../shared/tools/nfsprobe/nfsprobe.c')

t.test('nfsprobe conform passes every check against the embedded export', async (t) => {
  t.ok(existsSync(source), `nfsprobe source at ${source}`)
  const bin = join(t.testdir({}), 'nfsprobe')
  const flags = (await run('pkg-config', ['--cflags', '--libs', 'libnfs'])).stdout.trim().split(/\s+/).filter((f) => f !== '')
  await run('gcc', ['-O2', '-o', bin, source, ...flags])
  const s = await startServer(t)
  const out = await run(bin, ['conform', s.url('/export')], { maxBuffer: 16 * 1024 * 1024 }).then(
    (r) => r.stdout,
    (e: unknown) => {
      const x = e as { stdout?: string; stderr?: string; message: string }
      t.comment(`${x.message} ${x.stderr ?? ""}`)
      return x.stdout ?? ''
    },
  )
  const failed = out.split('\n').filter((l) => l.startsWith('FAIL'))
  t.strictSame(failed, [], 'no check failed')
  const summary = /^(\d+) passed, (\d+) failed$/m.exec(out)
  t.ok(summary, 'nfsprobe printed its summary')
  t.ok(Number(summary?.[1]) >= 40, `${summary?.[1] ?? 0} checks passed`)
  t.equal(summary?.[2], '0')
})
