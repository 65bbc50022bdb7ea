/*
 * The NLM probe judged by an independent lock manager: nfsprobe's nlm mode
 * (libnfs's raw NLM v4 calls) against NFS-Ganesha 4.3's NLM (FSAL_VFS on a
 * temporary directory, NLM on a port of its own, rpc.statd beside it; see
 * test/helpers/ganesha.ts). Every status is asserted exactly, so a probe
 * that encodes a call wrongly shows here. Where Ganesha departs from the
 * protocol (NLM4_FBIG past 2^63 - 1, a STALE_FH reply without the cookie)
 * the test says so by name; tools/nfsprobe/README.md lists the same.
 */
import t from 'tap'
import type { Test } from 'tap'
import { mkdirSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { startGanesha } from '../helpers/ganesha.ts'
import { buildProbe } from './conform.ts'
import { BASIC_OPS, BASIC_REPLIES, runNlm } from './nlm-probe.ts'
import { runNlmBench } from '../../bench/nlm-probe.ts'
import type { NlmTarget } from '../../bench/nlm-probe.ts'

const base = t.testdir({ export: {}, state: {} })
const exportDir = join(base, 'export')
mkdirSync(exportDir, { recursive: true })
const g = await startGanesha(t, exportDir, join(base, 'state'), '/vfs', { nlm: true })
const bin = await buildProbe(t)
// Ganesha monitors each caller through rpc.statd, which must resolve the name.
const target: NlmTarget = { url: g.url(), nlmPort: g.nlmPort, caller: 'localhost' }

const script = async (t: Test, file: string, ops: readonly string[], expected: readonly string[]): Promise<void> => {
  const r = await runNlm(bin, target, file, ops)
  t.strictSame(r.lines, expected, `replies (stderr: ${r.stderr.trim() || 'none'})`)
  t.equal(r.exitCode, 0, 'every op had its reply')
}

t.test('LOCK granted, a conflicting TEST denied with the holder, LOCK denied, UNLOCK, then granted', (t) =>
  script(t, '/basic', BASIC_OPS, BASIC_REPLIES))

t.test('shared locks share; an exclusive TEST sees a shared holder', (t) =>
  script(t, '/shared', [
    'lock,off=0,len=10,svid=1,oh=r1',
    'lock,off=5,len=10,svid=2,oh=r2',
    'test,x,off=12,len=1,svid=3,oh=w3',
    'lock,x,off=0,len=1,svid=3,oh=w3',
    'unlock,off=0,len=10,svid=1,oh=r1',
    'unlock,off=5,len=10,svid=2,oh=r2',
    'lock,x,off=0,len=1,svid=3,oh=w3',
    'unlock,svid=3,oh=w3',
  ], [
    'LOCK NLM4_GRANTED',
    'LOCK NLM4_GRANTED',
    'TEST NLM4_DENIED excl=0 svid=2 oh=r2 off=5 len=10',
    'LOCK NLM4_DENIED',
    'UNLOCK NLM4_GRANTED',
    'UNLOCK NLM4_GRANTED',
    'LOCK NLM4_GRANTED',
    'UNLOCK NLM4_GRANTED',
  ]))

t.test('v4 ranges are 64-bit: locks past 4 GiB, and to the end of the file', (t) =>
  script(t, '/ranges', [
    'lock,x,off=0x100000000,len=16,svid=1,oh=big',
    'test,x,off=0x100000008,len=1,svid=2,oh=other',
    'test,x,off=0,len=0x100000000,svid=2,oh=other',
    'lock,x,off=0x10000000000,len=0,svid=1,oh=big',
    'test,off=0x4000000000000000,len=1,svid=2,oh=other',
    'unlock,off=0,len=0,svid=1,oh=big',
    'test,x,svid=2,oh=other',
  ], [
    'LOCK NLM4_GRANTED',
    'TEST NLM4_DENIED excl=1 svid=1 oh=big off=4294967296 len=16',
    'TEST NLM4_GRANTED',
    'LOCK NLM4_GRANTED',
    'TEST NLM4_DENIED excl=1 svid=1 oh=big off=1099511627776 len=0',
    'UNLOCK NLM4_GRANTED',
    'TEST NLM4_GRANTED',
  ]))

t.test('a blocking LOCK that must wait is BLOCKED; CANCEL withdraws it, so it is never granted', (t) =>
  script(t, '/blocking', [
    'lock,x,svid=1,oh=holder',
    'lock,x,block,svid=2,oh=waiter',
    'cancel,x,block,svid=2,oh=waiter',
    'unlock,svid=1,oh=holder',
    'sleep=300',
    'test,x,svid=3,oh=third',
  ], [
    'LOCK NLM4_GRANTED',
    'LOCK NLM4_BLOCKED',
    'CANCEL NLM4_GRANTED',
    'UNLOCK NLM4_GRANTED',
    'SLEEP ok',
    'TEST NLM4_GRANTED',
  ]))

t.test('a lock on a removed file\'s handle is NLM4_STALE_FH', (t) =>
  script(t, '/stale', [
    'lock,x,svid=1,oh=gone',
    'unlock,svid=1,oh=gone',
    'unlink',
    'lock,x,svid=1,oh=gone',
    'test,x,svid=1,oh=gone',
  ], [
    'LOCK NLM4_GRANTED',
    'UNLOCK NLM4_GRANTED',
    'UNLINK ok',
    'LOCK NLM4_STALE_FH',
    'TEST NLM4_STALE_FH',
  ]))

t.test('Ganesha\'s departures: NLM4_FBIG past 2^63 - 1, and a STALE_FH reply to a handle of no file without the cookie', async (t) => {
  const r = await runNlm(bin, target, '/deviations', [
    'lock,x,off=0x7ffffffffffffff0,len=0x10,svid=1,oh=top',
    'lock,x,off=0x8000000000000000,len=1,svid=1,oh=top',
    'unlock,off=0x7ffffffffffffff0,len=0x10,svid=1,oh=top',
    'fh=00112233',
    'lock,x,svid=1,oh=top',
  ])
  t.strictSame(r.lines, [
    'LOCK NLM4_GRANTED',
    'LOCK NLM4_FBIG',
    'UNLOCK NLM4_GRANTED',
    'FH ok',
    'LOCK NLM4_STALE_FH cookie=mismatch',
  ], 'replies')
  t.equal(r.exitCode, 1, 'a reply without its cookie makes the run fail')
})

t.test('a script error is exit status 2 and names the op', async (t) => {
  const r = await runNlm(bin, target, '/basic', ['null', 'lock,colour=blue'])
  t.strictSame(r.lines, ['NULL ok'])
  t.equal(r.exitCode, 2)
  t.match(r.stderr, /op 'lock,colour=blue': bad field 'colour=blue'/)
})

t.test('nlm-bench: uncontended LOCK/UNLOCK pairs, every one granted, nothing left locked', async (t) => {
  const r = await runNlmBench(bin, target, '/bench', 2000, 32, 'ganesha')
  t.equal(r.exitCode, 0, `exit status (stderr: ${r.stderr.trim() || 'none'})`)
  t.match(r.line, { mode: 'nlm-bench', phase: 'lock-unlock', label: 'ganesha', inflight: 32, ops: 2000, errors: 0, after_test: 'NLM4_GRANTED', nlm_port: g.nlmPort })
  t.ok((r.line?.pairs_per_s ?? 0) > 0 && (r.line?.lat_us_p50 ?? 0) > 0, 'a rate and a latency')
})

t.test('the probe left only its lock files in the export', async (t) => {
  t.strictSame(readdirSync(exportDir).sort(), ['basic', 'bench', 'blocking', 'deviations', 'ranges', 'shared'])
})
