// Steady-state READDIRPLUS end to end: a 5,000-file directory listed ROUNDS times (default 5) through a
// real server; prints entries per page and µs per call. `npx tsx bench/readdirplus-probe.ts nfs://HOST/export?nfsport=P`
// SERVER_PID=PID (a server on this machine): also the server's CPU (user + system, /proc) per call over
// the rounds after the first two, which the client's own time and the machine's other load do not
// blur as they do the wall time (/proc counts 10 ms ticks: use ROUNDS=20 or more).
import { readFileSync } from 'node:fs'
import { NfsDriver, parseBenchUrl } from './nfs-driver.ts'
const serverPid = process.env.SERVER_PID
/** The server's CPU time so far in µs (utime + stime, fields 14 and 15 of /proc/PID/stat, in clock ticks of 10 ms). */
function serverCpuUs(): number {
  if (serverPid === undefined) return 0
  const fields = readFileSync(`/proc/${serverPid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10_000
}
const url = parseBenchUrl(process.argv[2] ?? '')
const d = await NfsDriver.connect(url)
const dirName = `rdp-${process.pid}`
const dir = await d.mkdir(d.root, dirName)
const N = 5000
for (let i = 0; i < N; i += 32) await Promise.all(Array.from({ length: Math.min(32, N - i) }, (_, k) => d.create(dir, `f${i + k}`)))
const rounds = Number(process.env.ROUNDS ?? 5)
let cpuFrom = 0
let steadyCalls = 0
for (let round = 0; round < rounds; round++) {
  if (round === 2) cpuFrom = serverCpuUs()
  let cookie = 0n
  let verf = Buffer.alloc(8)
  let calls = 0
  let entries = 0
  let bytes = 0
  const t0 = process.hrtime.bigint()
  for (;;) {
    const r = await d.readdirplus(dir, cookie, verf)
    calls++
    verf = Buffer.from(r.resok.cookieverf)
    const list = r.resok.reply.entries as unknown as Array<{ cookie: bigint; name_handle: { data: Buffer } | null }>
    let last = cookie
    for (const e of list) { entries++; last = e.cookie; if (e.name_handle !== null) bytes = Math.max(bytes, e.name_handle.data.length) }
    cookie = last
    if (r.resok.reply.eof) break
  }
  if (round >= 2) steadyCalls += calls
  const us = Number(process.hrtime.bigint() - t0) / 1000
  console.log(`round ${round}: ${entries} entries in ${calls} calls (${(entries / calls).toFixed(0)}/call, handle ${bytes} B), ${(us / calls).toFixed(0)} µs/call, ${Math.round(entries / (us / 1e6))} entries/s`)
}
if (serverPid !== undefined && steadyCalls > 0) console.log(`server CPU ${((serverCpuUs() - cpuFrom) / steadyCalls).toFixed(0)} µs/call over rounds 2..${rounds - 1} (${steadyCalls} calls)`)
await d.close()
