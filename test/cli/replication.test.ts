/*
 * tsnfs replication status|takeover against an in-process standby served on
 * 127.0.0.1: the status plainly and as JSON, a takeover refused while the
 * primary is attached and answering, then forced; usage errors and an
 * unreachable node.
 */
import t from 'tap'
import { StreamCaller } from '../../server/callback/stream.ts'
import { TSNFS_REPL_PROG, repl_hello_args, repl_hello_res } from '../../xdr/generated/replication.ts'
import { RecordingTarget, startStandby } from '../server/replication/fixtures.ts'
import { tsnfs } from './cli.ts'

t.setTimeout(120_000)

t.test('status and takeover', async (t) => {
  const dir = t.testdir()
  const took: bigint[] = []
  const s = await startStandby(t, {
    dir,
    node: 'standby-7',
    epoch: 4n,
    targets: [{ id: 1, path: '/a', target: new RecordingTarget() }],
    // The test's primary sends no heartbeats; the CLI's start-up may take seconds on a loaded machine.
    extra: { onTakeover: (e) => void took.push(e), attachTimeoutMs: 60_000 },
  })
  const at = `127.0.0.1:${String(s.port)}`
  // A primary attaches (and stays attached while its connection is open).
  const p = await StreamCaller.open({ host: '127.0.0.1', port: s.port })
  t.teardown(() => {
    p.close()
  })
  const hello = await p.call({ prog: TSNFS_REPL_PROG.prog, vers: 1, proc: 1 }, repl_hello_args, {
    version: 1,
    cluster: Buffer.from('c1'),
    node: Buffer.from('primary-1'),
    epoch: 4n,
    handle_key: Buffer.alloc(32),
    exports: [{ export_id: 1, path: Buffer.from('/a'), sync: true }],
    export_list: Buffer.alloc(0),
    mount_list: Buffer.alloc(0),
  }, repl_hello_res)
  t.equal(hello.status, 0)

  const [plain, json, refused, help] = await Promise.all([
    tsnfs(['replication', 'status', at]),
    tsnfs(['replication', 'status', '--json', at]),
    tsnfs(['replication', 'takeover', at]),
    tsnfs(['replication', '--help']),
  ])
  t.equal(plain.code, 0, plain.stderr)
  t.match(plain.stdout, /^node {4}standby-7\nrole {4}standby\nepoch {3}4\nexports 1: at 0\npeers:\n/)
  t.match(plain.stdout, /\n {2}node +address +role +alive +heard +acked +lag ops +lag bytes +state\n {2}primary-1 +127\.0\.0\.1:\d+ +primary +yes +(\d+ ms|\d+\.\d s) ago +0 +0 +0 +attached\n$/)
  t.equal(json.code, 0, json.stderr)
  t.match(JSON.parse(json.stdout), {
    node: 'standby-7',
    role: 'standby',
    epoch: '4',
    positions: [{ exportId: 1, applied: '0', needResync: false }],
    peers: [{ node: 'primary-1', role: 'primary', alive: true, acked: '0', state: 'attached' }],
  })
  t.equal(refused.code, 1, 'refused while the primary answers')
  t.match(refused.stderr, /takeover refused: REPL_BUSY \(the primary still answers.*--force/)
  t.same(took, [])
  t.equal(help.code, 0)
  t.match(help.stdout, /^usage: tsnfs replication status HOST:PORT/)

  const forced = await tsnfs(['replication', 'takeover', '--force', at])
  t.equal(forced.code, 0, forced.stderr)
  t.equal(forced.stdout, 'took over: primary at epoch 5\n')
  t.same(took, [5n], 'the takeover hook ran once')
  const after = await tsnfs(['replication', 'status', '--json', at])
  t.match(JSON.parse(after.stdout), { role: 'primary', epoch: '5', peers: [] })
})

t.test('usage errors and an unreachable node', async (t) => {
  // Each run is a process start (seconds on a loaded machine): three cover the parser's refusals and a dead node.
  const [badSub, badAddr, down] = await Promise.all([
    tsnfs(['replication', 'promote', '127.0.0.1:1']),
    tsnfs(['replication', 'takeover', 'nowhere']),
    tsnfs(['replication', 'status', '127.0.0.1:1']),
  ])
  for (const [r, why] of [
    [badSub, /expected status or takeover, and HOST:PORT/],
    [badAddr, /not a HOST:PORT: "nowhere"/],
  ] as const) {
    t.equal(r.code, 2)
    t.match(r.stderr, why)
  }
  t.equal(down.code, 1)
  t.match(down.stderr, /^tsnfs replication: cannot connect to 127\.0\.0\.1:1: .*ECONNREFUSED/)
})
