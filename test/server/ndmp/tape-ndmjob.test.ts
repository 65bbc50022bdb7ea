/*
 * The independent judge: the NDMP SDK's ndmjob (Debian amanda-server) runs its agent self-tests
 * against our TAPE and MOVER services. test-mover must pass whole. test-tape stops at T-BW #6
 * against any agent, ndmjob's own included: its client never sends the zero-length TAPE_WRITE
 * it then checks (the failure names the previous message, TAPE_OPEN) — so we assert the same
 * output as ndmjob's own tape agent gives, up to that point. The cause is in the client:
 * Amanda's build allocates with g_malloc, whose g_malloc(0) is NULL, and
 * ndmp_9to4_tape_write_request takes that for "no memory" (helpers/ndmjob-gmalloc.ts).
 * With a g_malloc that answers 0 as malloc does (preloaded), T-BW and T-BR pass whole against
 * our agent, and T-BWR runs to its #23, where the Debian binary's compare fails against any
 * agent: it loads the bytes read back sign-extended (movsbl) and compares them with the
 * unsigned pattern ((i - 4) & 0xff), so every byte of 0x80 and above "differs" (the bytes we
 * send are those written). ndmjob's own agent stops earlier, at T-BWR #8 (EOF_ERR for EOM_ERR).
 */
import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startNdmpServer } from '../../../server/ndmp/server.ts'
import { haveNdmjob, ndmjobDaemon, runNdmjob } from '../../helpers/ndmjob.ts'
import { gmallocShim, ndmjobDaemonPreloaded, runNdmjobPreloaded } from '../../helpers/ndmjob-gmalloc.ts'
import type { NdmjobResult } from '../../helpers/ndmjob.ts'

/** ndmjob verbose, without time stamps (its output compared line by line). */
function ndmjob(args: string[]): Promise<NdmjobResult> {
  return runNdmjob(['-v', '-o', 'no-time-stamps', ...args])
}

const tests = (out: string): string[] => out.split('\n').filter((l) => /^(TEST|Test) /.test(l))

if (!haveNdmjob) {
  t.test('ndmjob self-tests', { skip: 'ndmjob is not installed (apt-get install amanda-server)' }, async () => undefined)
} else {
  t.test('ndmjob -o test-mover and -o test-tape against our server', async (t) => {
    const dir = t.testdir({ tape: '' })
    const tape = join(dir, 'tape')
    const server = await startNdmpServer({
      port: 0,
      host: '127.0.0.1',
      credentials: new Map([['backup', 'secret']]),
      exports: () => [],
      tapes: [{ name: tape, path: tape }],
      stateDir: dir,
    })
    t.teardown(() => server.close())
    for (const agent of ['4t', '4m', '3t']) {
      const r = await ndmjob(['-o', 'test-mover', '-T', `127.0.0.1:${server.port}/${agent},backup,secret`, '-f', tape])
      t.equal(r.code, 0, `test-mover /${agent} exits 0`)
      t.match(r.out, 'TEST "FINAL test-mover Passed -- pass=100 warn=0 fail=0 (total 100)"', `test-mover /${agent}: 100 passed`)
      t.match(r.out, 'LOCAL and TCP addressing tested.')
    }
    await writeFile(tape, '')
    const ours = await ndmjob(['-o', 'test-tape', '-T', `127.0.0.1:${server.port}/4t,backup,secret`, '-f', tape])
    t.strictSame(tests(ours.out), [
      'TEST "Test T-OC -- Tape Open/Close"',
      'TEST "Test T-OC Passed -- pass=8 warn=0 fail=0 (total 8)"',
      'TEST "Test T-BGS -- Tape Get State Basics"',
      'TEST "Test T-BGS Passed -- pass=4 warn=0 fail=0 (total 4)"',
      'TEST "Test T-BW -- Tape Write Basics"',
      'Test "T-BW #6 -- .... expected NDMP9_ILLEGAL_ARGS_ERR"',
      'Test "T-BW #6 -- .... or NDMP9_NO_ERR"',
      'Test "Failure"',
      'Test "T-BW #6 -- Failed NDMP4_TAPE_OPEN/NDMP9_NO_ERR got NDMP9_NO_ERR (error expected)"',
    ])
    const bad = await ndmjob(['-o', 'test-mover', '-T', `127.0.0.1:${server.port}/4t,backup,wrong`, '-f', tape])
    t.notMatch(bad.out, 'Passed', 'wrong credentials get no test run')
  })

  t.test('ndmjob own tape agent gives the same test-tape output (the reference)', async (t) => {
    const dir = t.testdir({ tape: '' })
    const tape = join(dir, 'tape')
    // The helper waits until the daemon listens (a free port, not a random guess).
    const daemon = await ndmjobDaemon(t)
    const r = await ndmjob(['-o', 'test-tape', '-T', daemon.agent, '-f', tape])
    t.match(tests(r.out).at(-1), 'T-BW #6 -- Failed NDMP4_TAPE_OPEN/NDMP9_NO_ERR got NDMP9_NO_ERR (error expected)')
    t.equal(tests(r.out).length, 9)
  })

  t.test('test-tape past the client\'s g_malloc(0): T-BW and T-BR pass whole against our agent', async (t) => {
    const shim = await gmallocShim(t)
    if (shim === null) {
      t.comment('no C compiler (cc) to build the g_malloc shim')
      t.pass('skipped: no cc')
      return
    }
    const dir = t.testdir({ tape: '', ref: '' })
    const tape = join(dir, 'tape')
    const server = await startNdmpServer({
      port: 0,
      host: '127.0.0.1',
      credentials: new Map([['backup', 'secret']]),
      exports: () => [],
      tapes: [{ name: tape, path: tape }],
      stateDir: dir,
    })
    t.teardown(() => server.close())
    const ours = await runNdmjobPreloaded(shim, ['-v', '-o', 'no-time-stamps', '-o', 'test-tape', '-T', `127.0.0.1:${server.port}/4t,backup,secret`, '-f', tape])
    t.strictSame(tests(ours.out), [
      'TEST "Test T-OC -- Tape Open/Close"',
      'TEST "Test T-OC Passed -- pass=8 warn=0 fail=0 (total 8)"',
      'TEST "Test T-BGS -- Tape Get State Basics"',
      'TEST "Test T-BGS Passed -- pass=4 warn=0 fail=0 (total 4)"',
      'TEST "Test T-BW -- Tape Write Basics"',
      'TEST "Test T-BW Passed -- pass=13 warn=0 fail=0 (total 13)"',
      'TEST "Test T-BR -- Tape Read Basics"',
      'TEST "Test T-BR Passed -- pass=20 warn=0 fail=0 (total 20)"',
      'TEST "Test T-BWR -- Tape Write and Read Basics"',
      'Test "Failure"',
      'Test "T-BWR #23 -- Failed NDMP4_TAPE_READ/NDMP9_NO_ERR Failed compare"',
    ], ours.out)

    // The reference under the same shim: ndmjob's own tape agent stops earlier in T-BWR.
    const daemon = await ndmjobDaemonPreloaded(t, shim, dir)
    const ref = await runNdmjobPreloaded(shim, ['-v', '-o', 'no-time-stamps', '-o', 'test-tape', '-T', daemon.agent, '-f', join(dir, 'ref')])
    t.match(tests(ref.out).at(-1), 'T-BWR #8 -- Almost NDMP4_TAPE_READ/NDMP9_EOM_ERR got NDMP9_EOF_ERR (error expected)', ref.out)
  })
}
