/*
 * The duplicate request cache's store at its steady state (full: every new call evicts the
 * oldest entry), as dispatch uses it per non-idempotent call: a lookup that misses, an insertion,
 * then the reply filled in place; against lru-cache configured as drc.ts had it (bench/README.md,
 * session 38). Fresh key strings as dispatch builds them. ns per call, alternated rounds.
 *
 *   npx tsx bench/drc-store.ts [--calls N] [--rounds R]
 */
import { LRUCache } from 'lru-cache'
import { parseArgs } from 'node:util'
import { DrcStore } from '../server/rpc/drc-lru.ts'

const ENTRIES = 16_384
const COST = 1024

function main(): void {
  const { values } = parseArgs({ options: { calls: { type: 'string', default: '200000' }, rounds: { type: 'string', default: '6' } } })
  const n = Number(values.calls)
  const reply = Buffer.alloc(120)
  const store = new DrcStore(ENTRIES, 16 * 1024 * 1024, 120_000)
  const lru = new LRUCache<string, { reply: Buffer | null }>({ max: ENTRIES, ttl: 120_000, maxSize: 16 * 1024 * 1024, sizeCalculation: () => COST })
  let xid = 0x1234_5678
  const key = (i: number): string => `127.0.0.1|${xid++}|100003|3|${2 + (i % 3)}|${3200 + (i & 7)}|${Math.imul(i, 0x9e37_79b1) >>> 0}`
  const runs: Record<string, number[]> = { DrcStore: [], 'lru-cache': [] }
  for (let r = 0; r < Number(values.rounds); r++) {
    const which = r % 2 === 0 ? 'DrcStore' : 'lru-cache'
    const t0 = process.hrtime.bigint()
    if (which === 'DrcStore') {
      for (let i = 0; i < n; i++) {
        const k = key(i)
        if (store.get(k) === undefined) store.set(k, null, COST)
        const e = store.peek(k)
        if (e !== undefined) e.reply = reply
      }
    } else {
      for (let i = 0; i < n; i++) {
        const k = key(i)
        if (lru.get(k) === undefined) lru.set(k, { reply: null })
        const e = lru.peek(k)
        if (e !== undefined) e.reply = reply
      }
    }
    const ns = Number(process.hrtime.bigint() - t0) / n
    runs[which]?.push(ns)
    console.log(`round ${r + 1}  ${which.padEnd(10)} ${ns.toFixed(0)} ns per call`)
  }
  for (const [name, xs] of Object.entries(runs)) {
    const s = [...xs].sort((a, b) => a - b)
    console.log(`${name.padEnd(10)} median ${(s[s.length >> 1] ?? 0).toFixed(0)} ns per call (${s.length} rounds)`)
  }
}

main()
