/*
 * The listing nfsprobe's meta phase times (issue 13 item 7), call by call: a directory of N files
 * just made at K=32, GETATTRed and LOOKUPed at K=32, then listed once with READDIRPLUS (dircount
 * 8192, maxcount 32768) — its FIRST listing, in a server whose code has run before — then listed
 * again (the steady state), then emptied. Rounds repeat this in fresh directories of one server, so
 * the rounds after the first are what `tsnfs bench --warmup 1` measures. Per round: entries per call,
 * the first listing's wall time, its slowest calls, and with SERVER_PID the server's CPU (/proc,
 * 10 ms ticks) over each listing. WAIT_MS=ms pauses before each first listing.
 *
 *   SERVER_PID=PID npx tsx bench/readdirplus-first.ts 'nfs://127.0.0.1/export?nfsport=P&mountport=P' [rounds] [N]
 */
import { NfsDriver, parseBenchUrl } from './nfs-driver.ts'
import { median } from './results.ts'
import { cpuOf } from './tree-procs.ts'

const pid = Number(process.env.SERVER_PID ?? 0)
const url = parseBenchUrl(process.argv[2] ?? '')
const rounds = Number(process.argv[3] ?? 4)
const n = Number(process.argv[4] ?? 5000)
const K = 32
const waitMs = Number(process.env.WAIT_MS ?? 0)

async function pool(count: number, one: (i: number) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    for (let i = next++; i < count; i = next++) await one(i)
  }
  await Promise.all(Array.from({ length: K }, worker))
}

interface Listing { calls: number; entries: number; wallUs: number; callUs: number[]; cpuUs: number }

async function list(d: NfsDriver, dir: Buffer): Promise<Listing> {
  let cookie = 0n
  let verf = Buffer.alloc(8)
  const callUs: number[] = []
  let entries = 0
  const cpu0 = pid > 0 ? cpuOf(pid) : 0
  const t0 = performance.now()
  for (;;) {
    const c0 = performance.now()
    const r = await d.readdirplus(dir, cookie, verf)
    callUs.push((performance.now() - c0) * 1000)
    verf = Buffer.from(r.resok.cookieverf)
    const es = r.resok.reply.entries as unknown as Array<{ cookie: bigint }>
    entries += es.length
    cookie = es.at(-1)?.cookie ?? cookie
    if (r.resok.reply.eof) break
  }
  const wallUs = (performance.now() - t0) * 1000
  return { calls: callUs.length, entries, wallUs, callUs, cpuUs: pid > 0 ? (cpuOf(pid) - cpu0) * 1e6 : 0 }
}

const d = await NfsDriver.connect(url)
const firsts: number[] = []
const seconds: number[] = []
try {
  for (let r = 0; r < rounds; r++) {
    const name = `rdpfirst-${process.pid}-${r}`
    const dir = await d.mkdir(d.root, name)
    const handles: Buffer[] = []
    await pool(n, async (i) => { handles[i] = await d.create(dir, `f${i}`) })
    await pool(n, async (i) => { await d.getattr(handles[i] ?? Buffer.alloc(0)) })
    await pool(n, async (i) => { await d.lookup(dir, `f${i}`) })
    // WAIT_MS: a pause before the first listing (what the server finishes in the background after the creates).
    if (waitMs > 0) await new Promise((ok) => setTimeout(ok, waitMs))
    const m0 = process.hrtime.bigint()
    const first = await list(d, dir)
    const m1 = process.hrtime.bigint()
    const second = await list(d, dir)
    const m2 = process.hrtime.bigint()
    // CLOCK_MONOTONIC in µs, the clock of a --cpu-prof profile's timestamps: slice the server's profile by these.
    if (process.env.MARKS !== undefined) console.error(`marks ${r} ${m0 / 1000n} ${m1 / 1000n} ${m2 / 1000n}`)
    await pool(n, async (i) => { await d.remove(dir, `f${i}`) })
    await d.rmdir(d.root, name)
    // The slowest calls with their place in the listing (#0 is the listing's first call).
    const slow = first.callUs.map((us, i) => [us, i] as const).sort((a, b) => b[0] - a[0]).slice(0, 4)
      .map(([us, i]) => `${Math.round(us)}@#${i}`).join(' ')
    const cpu = (l: Listing): string => (pid > 0 ? `, server CPU ${Math.round(l.cpuUs / l.calls)} µs/call` : '')
    console.log(`round ${r}: ${first.entries} entries in ${first.calls} calls; first listing ${Math.round(first.entries / (first.wallUs / 1e6))} entries/s, ` +
      `median call ${Math.round(median(first.callUs))} µs, slowest ${slow}${cpu(first)}; again ${Math.round(second.entries / (second.wallUs / 1e6))} entries/s, ` +
      `median call ${Math.round(median(second.callUs))} µs${cpu(second)}`)
    if (r > 0) {
      firsts.push(first.entries / (first.wallUs / 1e6))
      seconds.push(second.entries / (second.wallUs / 1e6))
    }
  }
} finally {
  await d.close()
}
if (firsts.length > 0) console.log(`rounds 1..${rounds - 1}: first listing median ${Math.round(median(firsts))} entries/s, again ${Math.round(median(seconds))} entries/s`)
