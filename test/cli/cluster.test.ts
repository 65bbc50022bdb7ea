/*
 * tsnfs cluster init|status|gc|fsck on a fresh database (data=postgres), as
 * an operator runs them: the password in a credentials file, never on the
 * command line. Exit codes: 0 done, 1 failure or fsck problems, 2 usage.
 */
import t from 'tap'
import { tsnfs } from './cli.ts'
import { clusterDbAt, sql } from '../e2e/cluster-harness.ts'
import { testDatabase } from '../helpers/postgres.ts'
import { SCHEMA_FORMAT } from '../../vfs/cluster/schema.ts'

t.test('init, init again, status, gc, fsck', async (t) => {
  const db = clusterDbAt(t, await testDatabase(t))
  const base = ['--meta', db.meta, '--data', 'postgres', '--credentials', db.credentials]
  const init = await tsnfs(['cluster', 'init', ...base])
  t.equal(init.code, 0, init.stderr)
  t.match(init.stdout, /^initialized: metadata in postgres:\/\/postgres@127\.0\.0\.1:5432\/\w+, data in /)
  const key = (await sql(db, "SELECT value FROM tsnfs_setting WHERE name = 'handle_key'"))[0]?.['value']
  t.match(key, /^[0-9a-f]{64}$/, 'a 32-byte handle key')
  const again = await tsnfs(['cluster', 'init', ...base])
  t.equal(again.code, 0, 'init again succeeds')
  t.equal((await sql(db, "SELECT value FROM tsnfs_setting WHERE name = 'handle_key'"))[0]?.['value'], key, 'and keeps the handle key')

  const st = await tsnfs(['cluster', 'status', ...base])
  t.equal(st.code, 0, st.stderr)
  t.match(st.stdout, new RegExp(`^format: ${SCHEMA_FORMAT}$`, 'm'))
  t.match(st.stdout, /^data: postgres$/m)
  t.match(st.stdout, /^inodes: \d+$/m)
  t.match(st.stdout, /^bytes: \d+$/m)
  t.match(st.stdout, /^servers: 0$/m, 'no server runs')
  // A server's session, as a running server writes it: listed with its heartbeat's age.
  await sql(db, 'INSERT INTO tsnfs_session (sid, host, pid, started, heartbeat, info) VALUES (42, $1, 4242, $2, $2, $3)', ['web1', Date.now() - 60_000, 'export /shared'])
  const st2 = await tsnfs(['cluster', 'status', ...base])
  t.match(st2.stdout, /^servers: 1$/m)
  const age = /^ {2}session 42: web1 pid 4242, up \d+ s, heartbeat (\d+\.\d) s ago, export \/shared$/m.exec(st2.stdout)?.[1]
  t.ok(Number(age) >= 59 && Number(age) < 600, `the session listed, heartbeat ${String(age)} s ago (written 60 s in the past; the command's start under load adds)`)
  const json = await tsnfs(['cluster', 'status', '--json', ...base])
  const parsed = JSON.parse(json.stdout) as { format: string; sessions: { sid: string; pid: number }[] }
  t.strictSame([parsed.format, parsed.sessions.map((s) => [s.sid, s.pid])], [String(SCHEMA_FORMAT), [['42', 4242]]], 'status --json')

  const gc = await tsnfs(['cluster', 'gc', '--dry-run', '--min-age', '0s', ...base])
  t.equal(gc.code, 0, gc.stderr)
  t.match(gc.stdout, /^gc \(dry run, nothing deleted\)/)
  // An orphan block (no slice names id 42), written long ago: gc deletes it; a dry run only counts it.
  await sql(db, "INSERT INTO tsnfs_block (key, data, created) VALUES ('chunks/2a/42_0_3', '\\x616263', 0)")
  const dry = await tsnfs(['cluster', 'gc', '--dry-run', '--min-age', '0s', ...base])
  t.match(dry.stdout, /orphans 1, orphanBytes 3/, `dry run counts the orphan: ${dry.stdout.trim()}`)
  t.equal((await sql(db, 'SELECT count(*)::int AS n FROM tsnfs_block'))[0]?.['n'], 1, 'and leaves it')
  const real = await tsnfs(['cluster', 'gc', '--min-age', '0s', ...base])
  t.equal(real.code, 0, real.stderr)
  t.match(real.stdout, /^gc: .*orphans 1/)
  t.equal((await sql(db, 'SELECT count(*)::int AS n FROM tsnfs_block'))[0]?.['n'], 0, 'gc deleted the orphan')
  const fsck = await tsnfs(['cluster', 'fsck', ...base])
  t.equal(fsck.code, 0, `a fresh cluster is clean: ${fsck.stdout}${fsck.stderr}`)
  t.match(fsck.stdout, /^fsck: clean \(0 chunks, 0 slices, 0 objects, 1 pass\)$/m, 'one pass on a small file system')
  // A referenced slice whose blocks are not in the store: fsck finds it and exits 1.
  await sql(db, 'INSERT INTO tsnfs_slice_ref (id, size, refs) VALUES (999999, 4096, 1)')
  const bad = await tsnfs(['cluster', 'fsck', ...base])
  t.equal(bad.code, 1, `fsck finds the broken reference: ${bad.stdout}`)
  t.match(bad.stdout, /problem/)
  const one = bad.stdout.split('\n').filter((l) => /^[a-z-]+: /.test(l) && !l.startsWith('fsck: ')).length
  // Per slice (refs, blocks) plus one usage-mismatch for the whole file system.
  t.match(bad.stdout, /^usage-mismatch: /m)
  const perSlice = one - 1
  t.ok(perSlice >= 1, `each broken slice is at least one problem (${String(perSlice)})`)
  const all = 3 * perSlice + 1
  // Two more such slices, in other key prefixes: 3 slices over at most 1 per pass is 4 passes
  // (a power of two), and a list capped at 1 says how many it left out.
  await sql(db, 'INSERT INTO tsnfs_slice_ref (id, size, refs) VALUES (1000000, 4096, 1), (1000001, 4096, 1)')
  const capped = await tsnfs(['cluster', 'fsck', '--max-problems', '1', '--max-slices', '1', ...base])
  t.equal(capped.code, 1, capped.stderr)
  const listed = capped.stdout.split('\n').filter((l) => /^[a-z-]+: /.test(l) && !l.startsWith('fsck: '))
  t.equal(listed.length, 1, `one problem listed: ${capped.stdout}`)
  t.match(capped.stdout, new RegExp(`^\\(${String(all - 1)} more problem\\(s\\) not listed: --max-problems 1\\)$`, 'm'))
  t.match(capped.stdout, new RegExp(`^fsck: ${String(all)} problem\\(s\\) \\(0 chunks, 3 slices, 0 objects, 4 passes\\)$`, 'm'))
  const cj = JSON.parse((await tsnfs(['cluster', 'fsck', '--json', '--max-problems', '1', '--max-slices', '1', ...base])).stdout) as { passes: number; unlisted: number; problems: unknown[] }
  t.strictSame([cj.passes, cj.unlisted, cj.problems.length], [4, all - 1, 1], 'fsck --json has passes and unlisted')
})

t.test('usage errors exit 2; a password on the command line is refused; an unreachable database is 1', async (t) => {
  const usage = await tsnfs(['cluster', 'frobnicate', '--meta', 'postgres://u@h/db', '--data', 'postgres'])
  t.equal(usage.code, 2)
  t.match(usage.stderr, /^tsnfs cluster: expected one of init, status, gc, fsck\nusage: tsnfs cluster /)
  const noMeta = await tsnfs(['cluster', 'status', '--data', 'postgres'])
  t.match([noMeta.code, noMeta.stderr], [2, /--meta postgres:\/\/user@host:port\/database is required/])
  const dry = await tsnfs(['cluster', 'fsck', '--dry-run', '--meta', 'postgres://u@h/db', '--data', 'postgres'])
  t.match([dry.code, dry.stderr], [2, /--dry-run and --min-age are for gc/])
  const cap = await tsnfs(['cluster', 'fsck', '--max-problems', '0', '--meta', 'postgres://u@h/db', '--data', 'postgres'])
  t.match([cap.code, cap.stderr], [2, /--max-problems takes a count from 1 to 999999999, not "0"/])
  const capGc = await tsnfs(['cluster', 'gc', '--max-slices', '5', '--meta', 'postgres://u@h/db', '--data', 'postgres'])
  t.match([capGc.code, capGc.stderr], [2, /--max-problems and --max-slices are for fsck/])
  const age = await tsnfs(['cluster', 'gc', '--min-age', 'soon', '--meta', 'postgres://u@h/db', '--data', 'postgres'])
  t.match([age.code, age.stderr], [2, /not a duration: "soon"/])
  const pw = await tsnfs(['cluster', 'status', '--meta', 'postgres://u:secret@127.0.0.1:1/db', '--data', 'postgres'])
  t.equal(pw.code, 1)
  t.match(pw.stderr, /the URL holds a password; put the password in the credentials file or PGPASSWORD/)
  const t0 = Date.now()
  const down = await tsnfs(['cluster', 'status', '--meta', 'postgres://u@127.0.0.1:1/db', '--data', 'postgres'])
  t.equal(down.code, 1, `unreachable database: ${down.stderr.trim()}`)
  t.ok(Date.now() - t0 < 30_000, 'within a bound')
  const help = await tsnfs(['cluster', '--help'])
  t.match([help.code, help.stdout], [0, /^usage: tsnfs cluster init\|status\|gc\|fsck/])
})
