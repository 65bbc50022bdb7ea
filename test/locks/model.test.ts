/*
 * Property tests: random sequences of operations from 3 clients x 2 owners on
 * 2 files, each step checked against the per-byte model in ./model.ts. The
 * seed is printed; rerun one with LOCKS_SEED=<seed>.
 */
import { isDeepStrictEqual } from 'node:util'
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { LockTable } from '../../locks/table.ts'
import { DEFAULT_LOCK_LIMITS, type LockLimits, type LockRequest } from '../../locks/types.ts'
import { owner, span, spans } from './helpers.ts'
import { CELLS, Model, keyOf, reaches, shapeErrors, tableBytes, toOffset } from './model.ts'

const seed = Number(process.env.LOCKS_SEED ?? Math.floor(Math.random() * 2 ** 31))
const RUNS = 200
const FILES = ['f0', 'f1']
const CLIENTS = ['c0', 'c1', 'c2']
const OWNERS = CLIENTS.flatMap((c) => [owner(c, 1), owner(c, 2)])
const TIGHT: LockLimits = { maxPerClient: 5, maxPerFile: 6, maxWaitersPerFile: 3, maxTotal: 9 }

interface Op {
  readonly kind: 'lock' | 'test' | 'unlock' | 'cancel' | 'freeClient' | 'freeOwner'
  readonly file: number
  readonly owner: number
  readonly start: number
  readonly end: number
  readonly exclusive: boolean
  readonly block: boolean
  readonly allFiles: boolean
}

/**
 * Short ranges (splits, merges) and long ones (to EOF) both; half start in the
 * first 8 bytes, so owners contend often enough to queue and deadlock.
 */
const range = fc.oneof(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: CELLS - 1 })).chain((start) =>
  fc.oneof(fc.integer({ min: start + 1, max: Math.min(start + 4, CELLS) }), fc.integer({ min: start + 1, max: CELLS })).map((end) => ({ start, end })),
)
const op = (kinds: readonly Op['kind'][], blocking: boolean): fc.Arbitrary<Op> =>
  fc
    .record({ kind: fc.constantFrom(...kinds), file: fc.nat(FILES.length - 1), owner: fc.nat(OWNERS.length - 1), r: range, exclusive: fc.boolean(), block: blocking ? fc.constantFrom(true, true, true, false) : fc.constant(false), allFiles: fc.boolean() })
    .map(({ r, ...o }) => ({ ...o, ...r }))

function request(o: Op): LockRequest {
  return { file: FILES[o.file]!, owner: OWNERS[o.owner]!, start: toOffset(o.start), end: toOffset(o.end), exclusive: o.exclusive }
}

function snapshot(lt: LockTable): unknown {
  return { size: lt.size, files: FILES.map((f) => [spans(lt.held(f)), lt.waiting(f).map(span)]) }
}

/** The same state in table and model, in the table's own canonical form, within the limits. */
function checkState(lt: LockTable, model: Model, limits: LockLimits): void {
  let held = 0
  for (const f of FILES) {
    const h = lt.held(f)
    held += h.length
    const want = model.bytes(f)
    if (!isDeepStrictEqual(tableBytes(h), want)) throw new Error(`${f}: table ${JSON.stringify(spans(h))} differs from the model ${JSON.stringify(want)}`)
    const shape = shapeErrors(h)
    if (shape.length > 0) throw new Error(`${f}: ${shape.join('; ')}`)
    if (h.length > limits.maxPerFile || lt.waiting(f).length > limits.maxWaitersPerFile) throw new Error(`${f} over a limit`)
  }
  const waiting = FILES.reduce((n, f) => n + lt.waiting(f).length, 0)
  const files = FILES.filter((f) => lt.held(f).length + lt.waiting(f).length > 0).length
  if (!isDeepStrictEqual(lt.size, { held, waiting, shares: 0, files })) throw new Error(`size ${JSON.stringify(lt.size)} but ${held} held, ${waiting} waiting in ${files} files`)
  if (held + waiting > limits.maxTotal) throw new Error('over maxTotal')
  for (const c of CLIENTS) {
    const n = lt.heldBy(c).length + FILES.reduce((k, f) => k + lt.waiting(f).filter((w) => w.owner.client === c).length, 0)
    if (n > limits.maxPerClient) throw new Error(`${c} over maxPerClient`)
  }
}

/** The holder a denial names must be a held lock in the way, and the lowest-starting one. */
function checkHolder(lt: LockTable, r: LockRequest, holder: unknown): void {
  const inWay = lt.held(r.file).filter((l) => keyOf(l.owner) !== keyOf(r.owner) && l.start < r.end && r.start < l.end && (l.exclusive || r.exclusive))
  const first = inWay.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0))[0]
  if (first === undefined || !inWay.some((l) => isDeepStrictEqual(l, holder)) || (holder as { start: bigint }).start !== first.start) {
    throw new Error(`holder ${JSON.stringify(holder, (_, v: unknown) => (typeof v === 'bigint' ? String(v) : v))} is not the first in the way`)
  }
}

/** Whether `growth` more ranges for r's client on r's file would pass a limit: the only excuse for nolocks. */
function nearLimit(lt: LockTable, limits: LockLimits, r: LockRequest, growth: number): boolean {
  return lt.heldBy(r.owner.client).length + growth > limits.maxPerClient || lt.held(r.file).length + growth > limits.maxPerFile || lt.size.held + growth > limits.maxTotal
}

function run(t: Test, name: string, prop: fc.IPropertyWithHooks<[Op[]]> | fc.IProperty<[Op[]]>): void {
  try {
    fc.assert(prop, { seed, numRuns: RUNS })
    t.pass(`${name}: ${RUNS} random sequences matched the model (seed ${seed})`)
  } catch (err) {
    // fast-check keeps the property's own error as the cause; its message says what differed.
    const cause = err instanceof Error && err.cause instanceof Error ? `\n${err.cause.message}` : ''
    t.fail(`${name}: ${err instanceof Error ? err.message : String(err)}${cause}`)
  }
}

t.comment(`seed ${seed} (rerun with LOCKS_SEED=${seed})`)

t.test('non-blocking lock/unlock/test/free against the per-byte model, with default and tight limits', async (t) => {
  for (const limits of [DEFAULT_LOCK_LIMITS, TIGHT]) {
    const tight = limits === TIGHT
    run(t, tight ? 'tight limits' : 'default limits', fc.property(fc.noBias(fc.array(op(['lock', 'lock', 'unlock', 'test', 'freeClient', 'freeOwner'], false), { minLength: 10, maxLength: 60 })), (ops) => {
      const lt = new LockTable(limits)
      const model = new Model()
      for (const o of ops) {
        const r = request(o)
        const before = snapshot(lt)
        const inWay = model.blockers(r).size > 0
        if (o.kind === 'lock' || o.kind === 'test') {
          const res = o.kind === 'lock' ? lt.lock(r, { block: false }) : lt.test(r)
          const status = 'status' in res ? res.status : res.ok ? 'granted' : 'denied'
          if (inWay) {
            if (status !== 'denied') throw new Error(`${o.kind} ${span(r)}: ${status}, the model has ${[...model.blockers(r)].join(',')} in the way`)
            checkHolder(lt, r, 'holder' in res ? res.holder : undefined)
          } else if (status === 'granted') {
            if (o.kind === 'lock') model.apply(r)
          } else if (!(tight && status === 'nolocks' && nearLimit(lt, limits, r, 2))) throw new Error(`${o.kind} ${span(r)}: ${status}, nothing in the way`)
          if ((status !== 'granted' || o.kind === 'test') && !isDeepStrictEqual(snapshot(lt), before)) throw new Error(`${o.kind} ${status} changed the table`)
        } else if (o.kind === 'unlock') {
          const res = lt.unlock(r.file, r.owner, r)
          if (res === 'unlocked') model.remove(r.file, r.owner, r.start, r.end)
          else if (!tight || !nearLimit(lt, limits, r, 1) || !isDeepStrictEqual(snapshot(lt), before)) throw new Error(`unlock ${span(r)}: ${res}`)
        } else if (o.kind === 'freeClient') {
          const want = lt.heldBy(r.owner.client).length
          const n = lt.freeClient(r.owner.client)
          if (n !== want) throw new Error(`freeClient ${r.owner.client}: ${n}, held ${want}`)
          model.drop((k) => k.startsWith(`${r.owner.client}/`))
        } else {
          const want = lt.heldBy(r.owner.client).filter((l) => keyOf(l.owner) === keyOf(r.owner) && (o.allFiles || l.file === r.file)).length
          const n = lt.freeOwner(o.allFiles ? null : r.file, r.owner)
          if (n !== want) throw new Error(`freeOwner ${keyOf(r.owner)}: ${n}, held ${want}`)
          model.drop((k) => k === keyOf(r.owner), o.allFiles ? undefined : r.file)
        }
        checkState(lt, model, limits)
      }
    }))
  }
})

t.test('blocking: grants, FIFO queue, cancel and deadlock refusals keep the table equal to the model', async (t) => {
  /** Outcomes over all runs, so the test shows it reached the paths it is about. */
  const seen = { blocked: 0, deadlock: 0, callbacks: 0, cancelled: 0 }
  run(t, 'blocking', fc.property(fc.noBias(fc.array(op(['lock', 'lock', 'lock', 'lock', 'unlock', 'unlock', 'cancel', 'freeClient', 'freeOwner'], true), { minLength: 20, maxLength: 100 })), (ops) => {
    const lt = new LockTable()
    const model = new Model()
    /** Queued requests as the test saw them go in, by span+file. */
    const pending = new Map<string, LockRequest>()
    const id = (r: LockRequest): string => `${r.file} ${span(r)}`
    const onGranted = (l: LockRequest): void => {
      if (!pending.delete(id(l))) throw new Error(`granted ${id(l)}, which was not queued`)
      seen.callbacks++
      model.apply(l)
    }
    /** Owner -> owners it waits for, from the queue and the model. */
    const graph = (): Map<string, Set<string>> => {
      const edges = new Map<string, Set<string>>()
      for (const w of FILES.flatMap((f) => lt.waiting(f))) {
        edges.set(keyOf(w.owner), new Set([...(edges.get(keyOf(w.owner)) ?? []), ...model.blockers(w)]))
      }
      return edges
    }
    for (const o of ops) {
      const r = request(o)
      if (o.kind === 'lock') {
        const inWay = model.blockers(r).size > 0
        // Deadlock: waiting for those in the way would close a cycle back to the requester.
        const want = !inWay ? 'granted' : !o.block ? 'denied' : reaches(graph(), model.blockers(r), keyOf(r.owner)) ? 'deadlock' : 'blocked'
        if (want === 'granted') model.apply(r)
        if (want === 'granted' || want === 'deadlock') pending.delete(id(r))
        const got = lt.lock(r, { block: o.block, onGranted }).status
        if (got !== want) throw new Error(`lock ${id(r)} block=${o.block}: ${got}, expected ${want}`)
        if (got === 'blocked') pending.set(id(r), r)
        if (got === 'blocked' || got === 'deadlock') seen[got]++
      } else if (o.kind === 'cancel') {
        // Half of the cancels name a queued request exactly; random ones rarely would.
        const queued = [...pending.values()]
        const c = o.exclusive && queued.length > 0 ? queued[o.start % queued.length]! : r
        const want = pending.delete(id(c))
        if (lt.cancel(c) !== want) throw new Error(`cancel ${id(c)}: expected ${want}`)
        if (want) seen.cancelled++
      } else if (o.kind === 'unlock') {
        model.remove(r.file, r.owner, r.start, r.end)
        if (lt.unlock(r.file, r.owner, r) !== 'unlocked') throw new Error('unlock refused under default limits')
      } else {
        const pick = (k: string): boolean => (o.kind === 'freeClient' ? k.startsWith(`${r.owner.client}/`) : k === keyOf(r.owner))
        const files = o.kind === 'freeOwner' && !o.allFiles ? [r.file] : FILES
        const want = files.reduce((n, f) => n + lt.held(f).filter((l) => pick(keyOf(l.owner))).length + lt.waiting(f).filter((w) => pick(keyOf(w.owner))).length, 0)
        for (const p of [...pending.keys()]) if (files.includes(p.split(' ')[0]!) && pick(p.split(' ')[1]!)) pending.delete(p)
        model.drop(pick, files.length === 1 ? files[0] : undefined)
        const n = o.kind === 'freeClient' ? lt.freeClient(r.owner.client) : lt.freeOwner(o.allFiles ? null : r.file, r.owner)
        if (n !== want) throw new Error(`${o.kind} ${keyOf(r.owner)}: ${n}, expected ${want}`)
      }
      checkState(lt, model, DEFAULT_LOCK_LIMITS)
      const queued = FILES.flatMap((f) => lt.waiting(f))
      if (!isDeepStrictEqual(new Set(queued.map(id)), new Set(pending.keys()))) throw new Error(`queue ${JSON.stringify(queued.map(id))} but pending ${JSON.stringify([...pending.keys()])}`)
      for (const w of queued) if (model.blockers(w).size === 0) throw new Error(`${id(w)} is queued with nothing in its way (a lost wake-up)`)
    }
  }))
  t.comment(`outcomes: ${JSON.stringify(seen)}`)
  for (const [k, n] of Object.entries(seen)) t.ok(n > 0, `reached ${k}`)
})
