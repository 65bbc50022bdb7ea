/*
 * bench/replication-hops.ts reads an `strace -f -tt -T -yy` file: the
 * parser joins split calls and names fds, and the hops of an op come out of
 * a hand-written trace as the arithmetic says (shapes and sums only: no
 * timing of this machine is looked at).
 */
import t from 'tap'
import { hopsOf, parseTrace } from '../../bench/replication-hops.ts'

const C = 'TCP:[127.0.0.1:2049->127.0.0.1:50000]'
const S = 'TCP:[127.0.0.1:40000->127.0.0.1:7000]'
const D = 'TCP:[127.0.0.1:40001->127.0.0.1:7000]'
const LOG = '/s/replication/1/log/00000000000000000001.log'
const TRACE = [
  `10 12:00:00.001000 read(30<${C}>, "x"..., 65536) = 156 <0.000010>`,
  `11 12:00:00.002000 openat(AT_FDCWD</w>, "/proc/self/fd/18/hop-0", O_RDWR|O_CREAT|O_EXCL, 0644) = 40</e/hop-0> <0.000500>`,
  `10 12:00:00.003000 write(26<${S}>, "a"..., 200) = 200 <0.000020>`,
  `12 12:00:00.003500 pwrite64(31<${LOG}>, "r"..., 180, 28 <unfinished ...>`,
  `12 12:00:00.004000 <... pwrite64 resumed>) = 180 <0.000500>`,
  `13 12:00:00.004100 fdatasync(31<${LOG}>) = 0 <0.000400>`,
  `10 12:00:00.005000 read(26<${S}>, "k"..., 65536) = 40 <0.000010>`,
  `10 12:00:00.005500 write(27<${D}>, "d"..., 380) = 380 <0.000020>`,
  `10 12:00:00.007000 read(27<${D}>, "k"..., 65536) = 32 <0.000010>`,
  `10 12:00:00.007500 write(30<${C}>, "r"..., 276) = 276 <0.000020>`,
  `10 12:00:00.008000 read(30<${C}>, "c"..., 65536) = 4228 <0.000010>`,
  `10 12:00:00.009000 read(30<${C}>, "m"..., 65536) = 124 <0.000010>`,
  `11 12:00:00.009500 fsync(40</e/hop-0>) = 0 <0.001000>`,
  `11 12:00:00.010600 fdatasync(19</s/local/1/index.log>) = 0 <0.000300>`,
  `10 12:00:00.011500 write(30<${C}>, "r"..., 164) = 164 <0.000020>`,
].join('\n')

t.test('a trace read into calls, and one op into its hops', async (t) => {
  const calls = parseTrace(TRACE)
  t.equal(calls.length, 14, 'the resumed line joins its call')
  const pw = calls.find((c) => c.name === 'pwrite64')
  t.equal(pw?.fd, LOG)
  t.equal(Math.round(((pw?.end ?? 0) - (pw?.start ?? 0)) * 1000), 500, 'a split call ends at its resumption')
  t.equal(calls[0]?.fd, C, 'a TCP fd named with its addresses')
  const h = hopsOf(calls, 'hop-0', { client: C, sender: S, drc: D, log: LOG })
  const rounded = Object.fromEntries(Object.entries(h ?? {}).map(([k, v]) => [k, Math.round(v * 1000) / 1000]))
  t.strictSame(rounded, {
    'CREATE total': 6.49,
    'CREATE backend open': 0.5,
    'CREATE log write+fdatasync': 1,
    'CREATE backend → log write': 2.49,
    'CREATE APPEND round trip': 2.01,
    'CREATE REPL_DRC round trip': 1.51,
    'CREATE REPL_DRC sent − APPEND answered': 0.49,
    'COMMIT total': 2.49,
    'COMMIT file fsync': 1,
    'COMMIT index fdatasync': 0.3,
  })
  t.equal(hopsOf(calls, 'hop-1', { client: C, sender: S, drc: D, log: LOG }), null, 'an op not in the trace')
})

t.test('an O_DSYNC log write (no fdatasync after it) is the log hop alone', async (t) => {
  const calls = parseTrace(TRACE.split('\n').filter((l) => !l.includes('fdatasync(31')).join('\n'))
  const h = hopsOf(calls, 'hop-0', { client: C, sender: S, drc: D, log: LOG })
  t.equal(Math.round((h?.['CREATE log write+fdatasync'] ?? 0) * 1000), 500)
})
