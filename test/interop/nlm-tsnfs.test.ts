/*
 * Our lock manager judged by an independent client: nfsprobe's nlm mode
 * (libnfs's raw NLM v4 and NSM v1 calls; tools/nfsprobe) against our server
 * on the embedded memory export. Every status is asserted exactly: TEST,
 * LOCK, CANCEL and UNLOCK granted and denied, the holder a denied TEST
 * names, v4's 64-bit ranges to the last byte, a lock on a stale handle,
 * and the status monitor's answers. The probe finds NLM and NSM through
 * our portmapper (on the server's one port) as a client would.
 */
import t from 'tap'
import type { Test } from 'tap'
import { startServer } from '../helpers/server.ts'
import { buildProbe } from './conform.ts'
import { BASIC_OPS, BASIC_REPLIES, runNlm } from './nlm-probe.ts'
import { runNlmBench } from '../../bench/nlm-probe.ts'
import type { NlmTarget } from '../../bench/nlm-probe.ts'

const s = await startServer(t, '/export *(rw,insecure,no_root_squash,backend=memory)\n')
// After the server: the build's assertion lets the root test end at its next idle moment.
const bin = await buildProbe(t)
const target: NlmTarget = { url: s.url('/export'), pmapPort: s.port, caller: 'probe-host' }

const script = async (t: Test, file: string, ops: readonly string[], expected: readonly string[]): Promise<void> => {
  const r = await runNlm(bin, target, file, ops)
  t.strictSame(r.lines, expected, `replies (stderr: ${r.stderr.trim() || 'none'})`)
  t.equal(r.exitCode, 0, 'every op had its reply, its cookie echoed')
}

t.test('LOCK granted, a conflicting TEST denied with the holder, LOCK denied, UNLOCK, then granted', (t) =>
  script(t, '/basic', BASIC_OPS, BASIC_REPLIES))

t.test('the same owner on another host is another owner', (t) =>
  script(t, '/hosts', [
    'lock,x,len=10,svid=1,oh=same,caller=host-a',
    'lock,x,len=10,svid=1,oh=same,caller=host-b',
    'test,x,len=10,svid=1,oh=same,caller=host-b',
    'unlock,len=10,svid=1,oh=same,caller=host-b',
    'lock,x,len=10,svid=1,oh=same,caller=host-a',
    'unlock,len=10,svid=1,oh=same,caller=host-a',
  ], [
    'LOCK NLM4_GRANTED',
    'LOCK NLM4_DENIED',
    'TEST NLM4_DENIED excl=1 svid=1 oh=same off=0 len=10',
    'UNLOCK NLM4_GRANTED',
    'LOCK NLM4_GRANTED',
    'UNLOCK NLM4_GRANTED',
  ]))

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

t.test('v4 ranges are 64-bit: past 4 GiB, to the end of the file, and up to the last byte', (t) =>
  script(t, '/ranges', [
    'lock,x,off=0x100000000,len=16,svid=1,oh=big',
    'test,x,off=0x100000008,len=1,svid=2,oh=other',
    'test,x,off=0,len=0x100000000,svid=2,oh=other',
    'lock,x,off=0x10000000000,len=0,svid=1,oh=big',
    'test,off=0x4000000000000000,len=1,svid=2,oh=other',
    'unlock,off=0,len=0,svid=1,oh=big',
    'lock,x,off=0xfffffffffffffff0,len=0x10,svid=1,oh=top',
    'test,x,off=0xffffffffffffffff,len=1,svid=2,oh=other',
    'test,x,off=0xffffffffffffffef,len=1,svid=2,oh=other',
    'unlock,off=0xfffffffffffffff0,len=0,svid=1,oh=top',
    'test,x,svid=2,oh=other',
  ], [
    'LOCK NLM4_GRANTED',
    'TEST NLM4_DENIED excl=1 svid=1 oh=big off=4294967296 len=16',
    'TEST NLM4_GRANTED',
    'LOCK NLM4_GRANTED',
    'TEST NLM4_DENIED excl=1 svid=1 oh=big off=1099511627776 len=0',
    'UNLOCK NLM4_GRANTED',
    'LOCK NLM4_GRANTED',
    // A range that reaches 2^64 is "to the end": its holder has length 0, as Linux's lockd reports one to OFFSET_MAX.
    'TEST NLM4_DENIED excl=1 svid=1 oh=top off=18446744073709551600 len=0',
    'TEST NLM4_GRANTED',
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

t.test('a lock on a stale handle is NLM4_STALE_FH: a removed file, and a handle of no file', (t) =>
  script(t, '/stale', [
    'lock,x,svid=1,oh=gone',
    'unlock,svid=1,oh=gone',
    'unlink',
    'lock,x,svid=1,oh=gone',
    'test,x,svid=1,oh=gone',
    'fh=00112233',
    'lock,x,svid=1,oh=gone',
  ], [
    'LOCK NLM4_GRANTED',
    'UNLOCK NLM4_GRANTED',
    'UNLINK ok',
    'LOCK NLM4_STALE_FH',
    'TEST NLM4_STALE_FH',
    'FH ok',
    'LOCK NLM4_STALE_FH',
  ]))

t.test('the status monitor: NULL, STAT, MON, UNMON, UNMON_ALL, NOTIFY, SIMU_CRASH answer with our state', async (t) => {
  const r = await runNlm(bin, target, '/nsm', [
    'sm-null',
    'sm-stat,name=probe-host',
    'sm-mon,name=peer-a,my=probe-host',
    'sm-unmon,name=peer-a,my=probe-host',
    'sm-unmon-all,my=probe-host',
    'sm-notify,name=peer-b,state=3',
    'sm-simu-crash',
    'sm-stat,name=probe-host',
  ])
  t.equal(r.exitCode, 0, `every op had its reply (stderr: ${r.stderr.trim() || 'none'})`)
  const state = Number(/^SM_STAT STAT_SUCC state=(\d+)$/.exec(r.lines[1] ?? '')?.[1] ?? NaN)
  t.ok(state % 2 === 1, `our state, odd while we run (${r.lines[1] ?? ''})`)
  t.strictSame(r.lines.slice(0, 7), [
    'SM_NULL ok',
    `SM_STAT STAT_SUCC state=${String(state)}`,
    `SM_MON STAT_SUCC state=${String(state)}`,
    `SM_UNMON state=${String(state)}`,
    `SM_UNMON_ALL state=${String(state)}`,
    'SM_NOTIFY ok',
    'SM_SIMU_CRASH ok',
  ], 'a local caller may monitor; every reply carries our state')
  const after = Number(/^SM_STAT STAT_SUCC state=(\d+)$/.exec(r.lines[7] ?? '')?.[1] ?? NaN)
  t.ok(after > state && after % 2 === 1, `after SM_SIMU_CRASH a newer odd state (${r.lines[7] ?? ''})`)
})

t.test('nlm-bench: uncontended LOCK/UNLOCK pairs, every one granted, nothing left locked', async (t) => {
  const r = await runNlmBench(bin, target, '/bench', 2000, 32, 'tsnfs')
  t.equal(r.exitCode, 0, `exit status (stderr: ${r.stderr.trim() || 'none'})`)
  t.match(r.line, { mode: 'nlm-bench', phase: 'lock-unlock', label: 'tsnfs', inflight: 32, ops: 2000, errors: 0, after_test: 'NLM4_GRANTED', nlm_port: s.port })
  t.ok((r.line?.pairs_per_s ?? 0) > 0 && (r.line?.lat_us_p50 ?? 0) > 0, 'a rate and a latency')
})
