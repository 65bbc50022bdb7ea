/*
 * tsnfs replication status asks a node's own failed exports with REPL_FAILURES, a procedure apart
 * from STATUS so that nodes of different builds still decode each other's STATUS. Against a node
 * that reports one failure, the status shows it (plainly and as JSON); against a node of an older
 * build, which answers REPL_FAILURES with PROC_UNAVAIL, the status is shown without failures and
 * the command succeeds.
 */
import t from 'tap'
import type { Test } from 'tap'
import { silentLogger } from '../../server/logger.ts'
import { RpcServer } from '../../server/rpc/server.ts'
import { defineProgram } from '../../server/rpc/program.ts'
import type { RpcProgram } from '../../server/rpc/program.ts'
import { failuresToWire, statusToWire } from '../../server/replication/status.ts'
import { TSNFS_REPL_PROG, repl_stat } from '../../xdr/generated/replication.ts'
import { tsnfs } from './cli.ts'

t.setTimeout(120_000)

const SINCE = Date.UTC(2026, 11, 6, 12, 34, 56, 789)
const FAILURE = { exportId: 1, state: 'failed: NOSPC', code: 'ENOSPC', path: '/srv/a', sinceMs: SINCE }

/** A standby's answers: its status, and its failures unless it is of an older build. */
function fakeStandby(older: boolean): RpcProgram {
  const busy = () => ({ status: repl_stat.REPL_BUSY })
  const prog = defineProgram(TSNFS_REPL_PROG, 'TSNFS_REPL_V1', {
    REPL_NULL: () => undefined,
    REPL_HELLO: busy,
    REPL_HEARTBEAT: busy,
    REPL_APPEND: busy,
    REPL_STATUS: () => ({ status: repl_stat.REPL_OK, ok: statusToWire({ node: 'b', role: 'standby', epoch: 3n, positions: [{ exportId: 1, applied: 42n, needResync: false }], peers: [] }) }),
    REPL_TAKEOVER: busy,
    REPL_RESYNC_BEGIN: busy,
    REPL_RESYNC_DIR: busy,
    REPL_RESYNC_SUMS: busy,
    REPL_RESYNC_DATA: busy,
    REPL_RESYNC_END: busy,
    REPL_DRC: busy,
    REPL_FAILURES: () => ({ status: repl_stat.REPL_OK, ok: failuresToWire([FAILURE]) }),
    REPL_DRC_HELD: busy,
    REPL_APPEND_DRC: () => ({ append: busy(), drc: repl_stat.REPL_BUSY }),
  })
  // An older build registered no procedure 12: the dispatcher answers PROC_UNAVAIL.
  if (older) (prog.versions.get(1)?.procs as Map<number, unknown> | undefined)?.delete(12)
  return prog
}

async function serve(t: Test, older: boolean): Promise<string> {
  const server = new RpcServer({ programs: [fakeStandby(older)], logger: silentLogger })
  const { port } = await server.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => server.close())
  return `127.0.0.1:${String(port)}`
}

t.test('a node reporting a failed export: the status shows it', async (t) => {
  const at = await serve(t, false)
  const [plain, json] = await Promise.all([tsnfs(['replication', 'status', at]), tsnfs(['replication', 'status', '--json', at])])
  t.equal(plain.code, 0, plain.stderr)
  t.equal(plain.stdout, 'node    b\nrole    standby\nepoch   3\nexports 1: at 42, failed: NOSPC (ENOSPC at /srv/a) since 2026-12-06T12:34:56.789Z\npeers   none\n')
  t.equal(json.code, 0, json.stderr)
  t.strictSame((JSON.parse(json.stdout) as { failures: unknown }).failures, [{ exportId: 1, state: 'failed: NOSPC', code: 'ENOSPC', path: '/srv/a', since: '2026-12-06T12:34:56.789Z' }])
})

t.test('a node of an older build (no REPL_FAILURES): the status without failures, exit 0', async (t) => {
  const at = await serve(t, true)
  const [plain, json] = await Promise.all([tsnfs(['replication', 'status', at]), tsnfs(['replication', 'status', '--json', at])])
  t.equal(plain.code, 0, plain.stderr)
  t.equal(plain.stderr, '')
  t.equal(plain.stdout, 'node    b\nrole    standby\nepoch   3\nexports 1: at 42\npeers   none\n')
  t.equal(json.code, 0, json.stderr)
  t.equal((JSON.parse(json.stdout) as { failures?: unknown }).failures, undefined, 'no failures key')
})
