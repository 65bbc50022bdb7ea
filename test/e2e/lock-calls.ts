/*
 * Well-formed NLM (versions 1, 3 and 4) and NSM calls for the dispatch
 * fuzzer (dispatch-fuzzer.ts): one seed per procedure, which the fuzzer
 * then mutates as it does captured NFS calls, and an arbitrary of lock
 * calls whose owners, ranges and flags vary over a few values each, so
 * that a run drives the lock table through conflicts, merges and splits,
 * blocked waiters, cancels, grants and FREE_ALLs, not only the decoders.
 * Every call the lock manager makes back (GRANTED_MSG, the *_RES replies,
 * SM_NOTIFY, the NSM callbacks) goes to a portmapper port nobody listens on.
 */
import fc from 'fast-check'
import { NLM_PROG } from '../../xdr/generated/nlm.ts'
import { SM_PROG } from '../../xdr/generated/nsm.ts'
import type { Codec } from '../../xdr/runtime/codec.ts'
import { encodeToBuffer } from '../../xdr/runtime/codec.ts'
import type { ProgramDef } from '../../xdr/runtime/program.ts'

export interface LockCall {
  name: string
  prog: number
  vers: number
  proc: number
  args: Buffer
}

export interface LockHandles {
  /** A regular file's NFS handle. */
  file: Buffer
  /** A directory's (locks on it are refused, but must be answered). */
  dir: Buffer
}

/** What varies in one lock call; the values are few, so that calls meet each other in the table. */
interface LockShape {
  fh: 'file' | 'dir' | 'junk' | 'empty'
  caller: string
  oh: number
  svid: number
  offset: bigint
  len: bigint
  exclusive: boolean
  block: boolean
  reclaim: boolean
  state: number
  stat: number
  share: { mode: number; access: number }
}

const CALLERS = ['client-a', 'client-b', '']
const EDGES = [0n, 1n, 100n, 4096n, 0x7fff_ffffn, 0xffff_ffffn, 0x7fff_ffff_ffff_ffffn, 0xffff_ffff_ffff_ffffn]

const shape: fc.Arbitrary<LockShape> = fc.record({
  fh: fc.constantFrom<LockShape['fh']>('file', 'file', 'file', 'dir', 'junk', 'empty'),
  caller: fc.constantFrom(...CALLERS),
  oh: fc.integer({ min: 0, max: 3 }),
  svid: fc.integer({ min: -1, max: 3 }),
  offset: fc.oneof(fc.constantFrom(...EDGES), fc.bigInt({ min: 0n, max: 200n })),
  len: fc.oneof(fc.constantFrom(...EDGES), fc.bigInt({ min: 0n, max: 200n })),
  exclusive: fc.boolean(),
  block: fc.boolean(),
  reclaim: fc.boolean(),
  state: fc.integer({ min: -2, max: 5 }),
  stat: fc.integer({ min: 0, max: 9 }),
  share: fc.record({ mode: fc.integer({ min: 0, max: 3 }), access: fc.integer({ min: 0, max: 3 }) }),
})

const DEFAULT: LockShape = {
  fh: 'file', caller: 'client-a', oh: 1, svid: 7, offset: 0n, len: 100n, exclusive: true, block: false, reclaim: false, state: 1, stat: 0,
  share: { mode: 0, access: 1 },
}

/** The argument value of NLM procedure `proc` in version `vers`, shaped by s; null for void. */
function nlmArgs(vers: number, proc: number, s: LockShape, h: LockHandles): unknown {
  const fh = s.fh === 'file' ? h.file : s.fh === 'dir' ? h.dir : s.fh === 'junk' ? Buffer.alloc(32, 0xa5) : Buffer.alloc(0)
  const oh = Buffer.from(`owner-${String(s.oh)}`)
  const cookie = Buffer.from([s.oh, s.svid & 0xff])
  // Versions 1 and 3 carry 32-bit ranges and a uppid; version 4 64-bit ranges and an svid.
  const lock = vers === 4
    ? { caller_name: s.caller, fh, oh, svid: s.svid, l_offset: s.offset, l_len: s.len }
    : { caller_name: s.caller, fh, oh, uppid: s.svid, l_offset: Number(s.offset & 0xffff_ffffn), l_len: Number(s.len & 0xffff_ffffn) }
  const holder = vers === 4
    ? { exclusive: s.exclusive, svid: s.svid, oh, l_offset: s.offset, l_len: s.len }
    : { exclusive: s.exclusive, uppid: s.svid, oh, l_offset: Number(s.offset & 0xffff_ffffn), l_len: Number(s.len & 0xffff_ffffn) }
  const stat = vers === 4 ? s.stat : s.stat % 5
  switch (proc) {
    case 0:
      return undefined
    case 1: case 5: case 6: case 10:
      return { cookie, exclusive: s.exclusive, alock: lock }
    case 2: case 7: case 22:
      return { cookie, block: s.block, exclusive: s.exclusive, alock: lock, reclaim: s.reclaim, state: s.state }
    case 3: case 8:
      return { cookie, block: s.block, exclusive: s.exclusive, alock: lock }
    case 4: case 9:
      return { cookie, alock: lock }
    case 11:
      return { cookie, test_stat: stat === 1 ? { stat, holder } : { stat } }
    case 12: case 13: case 14: case 15:
      return { cookie, stat: { stat } }
    case 20: case 21:
      return { cookie, share: { caller_name: s.caller, fh, oh, mode: s.share.mode, access: s.share.access }, reclaim: s.reclaim }
    case 23:
      return { name: s.caller, state: s.state }
    default:
      throw new Error(`lock-calls: NLM procedure ${String(proc)} has no shape`)
  }
}

function nsmArgs(proc: number, s: LockShape): unknown {
  const my = { my_name: '127.0.0.1', my_prog: NLM_PROG.prog, my_vers: 4, my_proc: 16 + (s.oh % 2) }
  switch (proc) {
    case 0: case 5:
      return undefined
    case 1:
      return { mon_name: s.caller }
    case 2:
      return { mon_id: { mon_name: s.caller, my_id: my }, priv: Buffer.alloc(16, s.oh) }
    case 3:
      return { mon_name: s.caller, my_id: my }
    case 4:
      return my
    case 6:
      return { mon_name: s.caller, state: s.state }
    default:
      throw new Error(`lock-calls: NSM procedure ${String(proc)} has no shape`)
  }
}

interface Proc {
  prog: number
  vers: number
  proc: number
  name: string
  args: Codec<unknown>
}

function procsOf(p: ProgramDef): Proc[] {
  const out: Proc[] = []
  for (const v of Object.values(p.versions)) {
    for (const d of Object.values(v.procs)) out.push({ prog: p.prog, vers: v.vers, proc: d.proc, name: d.name, args: d.args as Codec<unknown> })
  }
  return out
}

const NLM_PROCS = procsOf(NLM_PROG)
const NSM_PROCS = procsOf(SM_PROG)

function encode(p: Proc, s: LockShape, h: LockHandles): LockCall {
  const value = p.prog === NLM_PROG.prog ? nlmArgs(p.vers, p.proc, s, h) : nsmArgs(p.proc, s)
  return { name: p.name, prog: p.prog, vers: p.vers, proc: p.proc, args: encodeToBuffer(p.args, value) }
}

/** One well-formed call of every NLM and NSM procedure (SM_SIMU_CRASH aside: it restarts the monitor's state). */
export function lockSeedCalls(h: LockHandles): LockCall[] {
  return [...NLM_PROCS, ...NSM_PROCS.filter((p) => p.proc !== 5)].map((p) => encode(p, DEFAULT, h))
}

/** Lock calls of every NLM procedure and the NSM ones, shaped by few values each (see shape). */
export function lockCallArbitrary(h: LockHandles): fc.Arbitrary<LockCall> {
  // Mostly the calls that change the table; the rest as often as each other.
  const busy = NLM_PROCS.filter((p) => [1, 2, 3, 4, 20, 21, 22, 23].includes(p.proc))
  const proc = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...busy) }, { weight: 2, arbitrary: fc.constantFrom(...NLM_PROCS) }, { weight: 1, arbitrary: fc.constantFrom(...NSM_PROCS) })
  return fc.tuple(proc, shape).map(([p, s]) => encode(p, s, h))
}
