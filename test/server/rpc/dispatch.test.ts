import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { auth_flavor, auth_stat } from '../../../xdr/rpc/constants.ts'
import { dispatch } from '../../../server/rpc/dispatch.ts'
import type { CallOrigin, DispatchEnv } from '../../../server/rpc/dispatch.ts'
import { DuplicateRequestCache } from '../../../server/rpc/drc.ts'
import { RpcAuthError, RpcSystemError } from '../../../server/rpc/errors.ts'
import { combineVersions, defineProgram, defineVersion } from '../../../server/rpc/program.ts'
import type { RpcProgram } from '../../../server/rpc/program.ts'
import { createStats } from '../../../server/rpc/stats.ts'
import { silentLogger } from '../../../server/logger.ts'
import type { Logger } from '../../../server/logger.ts'
import { TEST_PROG, authSysCred, callRecord, words } from '../../helpers/rpc.ts'

const XID = 0xcafe_0001

function recordingLogger(): { log: Logger; errors: unknown[] } {
  const errors: unknown[] = []
  const log: Logger = { ...silentLogger, error: (obj: object | string) => void errors.push(obj), child: () => log }
  return { log, errors }
}

function testProgram(): { program: RpcProgram; executions: () => number } {
  let executions = 0
  const program = combineVersions(
    defineVersion(
      TEST_PROG,
      'TEST_V1',
      {
        TESTPROC_NULL: () => undefined,
        TESTPROC_ECHO: n => n,
        TESTPROC_WAIT: async n => {
          await sleep(n)
          return n
        },
        TESTPROC_INCR: n => {
          executions++
          return n + 1
        },
        TESTPROC_FAIL: n => {
          if (n === 0) throw new Error('boom')
          if (n === 1) throw new RpcSystemError()
          if (n === 2) throw new RpcAuthError(auth_stat.AUTH_TOOWEAK)
          return Promise.reject(new Error('async boom'))
        },
        TESTPROC_BYTES: n => (n === 0xffff_ffff ? (42 as unknown as Buffer) : Buffer.alloc(n, 0xab)),
        TESTPROC_WHOAMI: (_args, call) => (call.cred.flavor === 'sys' ? call.cred.uid : 0xffff_ffff),
      },
      { nonIdempotent: ['TESTPROC_INCR'] },
    ),
    defineVersion(TEST_PROG, 'TEST_V3', { TESTPROC3_NULL: () => undefined }),
  )
  return { program, executions: () => executions }
}

function setup(log: Logger = silentLogger): { env: DispatchEnv; origin: CallOrigin; executions: () => number } {
  const { program, executions } = testProgram()
  const env: DispatchEnv = {
    programs: new Map([[program.prog, program]]),
    drc: new DuplicateRequestCache({ max: 100, ttlMs: 60_000 }),
    stats: createStats(),
  }
  const origin: CallOrigin = {
    peer: { address: '127.0.0.1', port: 700, family: 'IPv4' },
    transport: 'tcp',
    signal: new AbortController().signal,
    log,
  }
  return { env, origin, executions }
}

async function reply(env: DispatchEnv, origin: CallOrigin, record: Buffer): Promise<Buffer | null> {
  const chunks = await dispatch(env, record, origin)
  return chunks === null ? null : Buffer.concat(chunks)
}

t.test('NULL succeeds, and ignores trailing bytes (P1)', async t => {
  const { env, origin } = setup()
  t.strictSame(await reply(env, origin, callRecord({ xid: XID, proc: 0 })), words(XID, 1, 0, 0, 0, 0))
  t.strictSame(await reply(env, origin, callRecord({ xid: XID, proc: 0, args: words(1, 2, 3) })), words(XID, 1, 0, 0, 0, 0))
  t.equal(env.stats.replies.success, 2)
  t.equal(env.stats.calls['200000/1/0'], 2)
})

t.test('ECHO returns its result after the SUCCESS header', async t => {
  const { env, origin } = setup()
  t.strictSame(await reply(env, origin, callRecord({ xid: XID, proc: 1, args: words(77) })), words(XID, 1, 0, 0, 0, 0, 77))
})

t.test('each RPC error reply, byte-exact', async t => {
  const { env, origin } = setup()
  const cases: [string, Buffer, Buffer][] = [
    ['rpcvers 3 -> RPC_MISMATCH(2,2)', words(XID, 0, 3, 200000, 1, 0, 0, 0, 0, 0), words(XID, 1, 1, 0, 2, 2)],
    ['unknown prog -> PROG_UNAVAIL', callRecord({ xid: XID, prog: 300000, proc: 0 }), words(XID, 1, 0, 0, 0, 1)],
    ['wrong vers -> PROG_MISMATCH(1,3)', callRecord({ xid: XID, vers: 2, proc: 0 }), words(XID, 1, 0, 0, 0, 2, 1, 3)],
    ['unknown proc -> PROC_UNAVAIL', callRecord({ xid: XID, proc: 99 }), words(XID, 1, 0, 0, 0, 3)],
    ['truncated args -> GARBAGE_ARGS', callRecord({ xid: XID, proc: 1, args: Buffer.from([0, 0]) }), words(XID, 1, 0, 0, 0, 4)],
    ['trailing bytes after args -> GARBAGE_ARGS', callRecord({ xid: XID, proc: 1, args: words(1, 2) }), words(XID, 1, 0, 0, 0, 4)],
    ['handler throws -> SYSTEM_ERR', callRecord({ xid: XID, proc: 4, args: words(0) }), words(XID, 1, 0, 0, 0, 5)],
    ['RpcSystemError -> SYSTEM_ERR', callRecord({ xid: XID, proc: 4, args: words(1) }), words(XID, 1, 0, 0, 0, 5)],
    ['RpcAuthError -> AUTH_ERROR(TOOWEAK)', callRecord({ xid: XID, proc: 4, args: words(2) }), words(XID, 1, 1, 1, 5)],
    ['rejected promise -> SYSTEM_ERR', callRecord({ xid: XID, proc: 4, args: words(3) }), words(XID, 1, 0, 0, 0, 5)],
    ['result encoder fails -> SYSTEM_ERR', callRecord({ xid: XID, proc: 5, args: words(0xffff_ffff) }), words(XID, 1, 0, 0, 0, 5)],
    ['unknown cred flavor -> AUTH_BADCRED', callRecord({ xid: XID, proc: 0, cred: { flavor: auth_flavor.AUTH_DH, body: Buffer.alloc(8) } }), words(XID, 1, 1, 1, 1)],
    ['cred body > 400 -> AUTH_BADCRED', words(XID, 0, 2, 200000, 1, 0, 1, 404), words(XID, 1, 1, 1, 1)],
    ['verf body > 400 -> AUTH_BADVERF', words(XID, 0, 2, 200000, 1, 0, 0, 0, 0, 404), words(XID, 1, 1, 1, 3)],
  ]
  for (const [name, call, expected] of cases) t.strictSame(await reply(env, origin, call), expected, name)
  t.same(env.stats.replies, { success: 0, progUnavail: 1, progMismatch: 1, procUnavail: 1, garbageArgs: 2, systemErr: 4, rpcMismatch: 1, authError: 4 })
})

t.test('unexpected handler errors are logged with their stack', async t => {
  const { log, errors } = recordingLogger()
  const { env, origin } = setup(log)
  await reply(env, origin, callRecord({ xid: XID, proc: 4, args: words(0) }))
  await reply(env, origin, callRecord({ xid: XID, proc: 4, args: words(1) }))
  t.equal(errors.length, 1, 'RpcSystemError is not logged as a bug')
  t.match(errors[0], { err: { message: 'boom', stack: /boom/ }, xid: XID, proc: 'TESTPROC_FAIL' })
})

t.test('AUTH_SYS credentials', async t => {
  const { env, origin } = setup()
  const whoami = (cred: ReturnType<typeof authSysCred>, verf?: { flavor: number; body: Buffer }): Promise<Buffer | null> =>
    reply(env, origin, callRecord({ xid: XID, proc: 6, cred, ...(verf ? { verf } : {}) }))
  t.strictSame(await whoami(authSysCred({ uid: 501, gids: [1, 2, 3] })), words(XID, 1, 0, 0, 0, 0, 501))
  t.strictSame(await whoami(authSysCred({ gids: new Array<number>(16).fill(7) })), words(XID, 1, 0, 0, 0, 0, 1000), '16 gids are fine')
  const good = authSysCred()
  const trailing = { flavor: 1, body: Buffer.concat([good.body, words(0)]) }
  t.strictSame(await whoami(trailing), words(XID, 1, 1, 1, 1), 'trailing bytes -> BADCRED')
  const tooManyGids = { flavor: 1, body: Buffer.concat([words(1, 0, 0, 0, 17), Buffer.alloc(68)]) }
  t.strictSame(await whoami(tooManyGids), words(XID, 1, 1, 1, 1), '17 gids -> BADCRED')
  const longName = { flavor: 1, body: Buffer.concat([words(1, 256), Buffer.alloc(256), words(0, 0, 0)]) }
  t.strictSame(await whoami(longName), words(XID, 1, 1, 1, 1), 'name of 256 -> BADCRED')
  t.strictSame(await whoami({ flavor: 1, body: words(1, 0, 0) }), words(XID, 1, 1, 1, 1), 'truncated -> BADCRED')
  t.strictSame(await whoami(good, { flavor: 1, body: good.body }), words(XID, 1, 1, 1, 3), 'non-NONE verifier -> BADVERF')
  t.strictSame(await whoami({ flavor: 0, body: Buffer.alloc(0) }), words(XID, 1, 0, 0, 0, 0, 0xffff_ffff), 'AUTH_NONE')
})

t.test('records that get no reply', async t => {
  const { env, origin } = setup()
  t.equal(await reply(env, origin, Buffer.alloc(0)), null, 'empty')
  t.equal(await reply(env, origin, words(XID)), null, 'only an xid')
  t.equal(await reply(env, origin, words(XID, 1, 0, 0, 0, 0)), null, 'a stray REPLY')
  t.equal(await reply(env, origin, words(XID, 0, 2, 200000, 1)), null, 'truncated before the credential')
  t.equal(env.stats.dropped, 4)
})

t.test('UDP: a reply over 65,507 bytes becomes SYSTEM_ERR', async t => {
  const { env, origin } = setup()
  const udp: CallOrigin = { ...origin, transport: 'udp' }
  const ok = await dispatch(env, callRecord({ xid: XID, proc: 5, args: words(65_000) }), udp)
  t.equal(ok?.reduce((n, c) => n + c.length, 0), 24 + 4 + 65_000)
  t.strictSame(await reply(env, udp, callRecord({ xid: XID, proc: 5, args: words(65_500) })), words(XID, 1, 0, 0, 0, 5))
  const tcp = await dispatch(env, callRecord({ xid: XID, proc: 5, args: words(65_500) }), origin)
  t.equal(tcp?.reduce((n, c) => n + c.length, 0), 24 + 4 + 65_500, 'TCP carries it')
})

t.test('DRC: a non-idempotent call is executed once and replayed byte for byte', async t => {
  const { env, origin, executions } = setup()
  const call = callRecord({ xid: XID, proc: 3, args: words(5) })
  const first = await reply(env, origin, call)
  const second = await reply(env, { ...origin, peer: { ...origin.peer, port: 999 } }, call)
  t.strictSame(first, words(XID, 1, 0, 0, 0, 0, 6))
  t.strictSame(second, first)
  t.equal(executions(), 1)
  t.equal(env.stats.drcHits, 1)
  // Same xid, other arguments: not a retransmission.
  await reply(env, origin, callRecord({ xid: XID, proc: 3, args: words(6) }))
  // Other client address: not a retransmission.
  await reply(env, { ...origin, peer: { ...origin.peer, address: '10.0.0.2' } }, call)
  t.equal(executions(), 3)
})

t.test('DRC: a duplicate while the original is in progress is dropped', async t => {
  const { env, origin, executions } = setup()
  const call = callRecord({ xid: XID, proc: 3, args: words(5) })
  const [a, b] = await Promise.all([reply(env, origin, call), reply(env, origin, call)])
  t.strictSame(a, words(XID, 1, 0, 0, 0, 0, 6))
  t.equal(b, null)
  t.equal(executions(), 1)
  t.equal(env.stats.drcInProgressDrops, 1)
})

t.test('DRC: idempotent procedures are not cached', async t => {
  const { env, origin } = setup()
  await reply(env, origin, callRecord({ xid: XID, proc: 1, args: words(5) }))
  await reply(env, origin, callRecord({ xid: XID, proc: 1, args: words(5) }))
  t.equal(env.drc.size, 0)
  t.equal(env.stats.drcHits, 0)
})

t.test('defineProgram: single version, and registration errors', async t => {
  const p = defineProgram(TEST_PROG, 'TEST_V3', { TESTPROC3_NULL: () => undefined })
  t.equal(p.low, 3)
  t.equal(p.high, 3)
  t.equal(p.versions.get(3)?.procs.get(0)?.name, 'TESTPROC3_NULL')
  t.throws(() => combineVersions(), TypeError)
  const v3 = defineVersion(TEST_PROG, 'TEST_V3', { TESTPROC3_NULL: () => undefined })
  t.throws(() => combineVersions(v3, v3), TypeError)
  t.throws(() => combineVersions(v3, { ...v3, prog: 1 }), TypeError)
  // @ts-expect-error a missing handler is a compile error
  t.throws(() => defineProgram(TEST_PROG, 'TEST_V3', {}), TypeError)
  // @ts-expect-error an unknown version name is a compile error
  t.throws(() => defineProgram(TEST_PROG, 'TEST_V9', {}), TypeError)
  // @ts-expect-error a misspelled procedure is a compile error
  defineProgram(TEST_PROG, 'TEST_V3', { TESTPROC3_NULL: () => undefined, TESTPROC3_NUL: () => undefined })
  // @ts-expect-error a wrong result type is a compile error
  defineProgram(TEST_PROG, 'TEST_V1', { ...testHandlersV1(), TESTPROC_ECHO: () => 'x' })
})

function testHandlersV1(): Parameters<typeof defineVersion<typeof TEST_PROG, 'TEST_V1'>>[2] {
  return {
    TESTPROC_NULL: () => undefined,
    TESTPROC_ECHO: n => n,
    TESTPROC_WAIT: n => n,
    TESTPROC_INCR: n => n,
    TESTPROC_FAIL: () => undefined,
    TESTPROC_BYTES: () => Buffer.alloc(0),
    TESTPROC_WHOAMI: () => 0,
  }
}
