/*
 * One fuzzed image, opened and walked as a server would: every group's
 * bitmaps, the reserved inodes, then every inode reachable from the root
 * (directories read, files read in pieces, symlinks read), then a path lookup
 * of a sample of every directory's names (and of a missing one, and through
 * each symlink). Each reader call is made separately, so one damaged
 * structure does not hide the rest of the walk.
 *
 * What counts as a failure (a reader bug): anything thrown that is not an
 * Error with a code from the engine (FormatError, BlockDevError; VfsError
 * ENOENT/ENOTDIR/ELOOP/ENAMETOOLONG from lookup, whose input is a path), a
 * call reading more than maxBytesPerCall (an amplification a corrupt count
 * caused), and a walk past its deadline (a loop). The device checks both on
 * every read, so a loop that keeps reading is stopped there even though it
 * never yields to a timer.
 */
import { createHash } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { VfsError } from '../../../vfs/errors.ts'
import { BlockDevError } from '../../../vfs/engine/blockdev/block-device.ts'
import { FormatError } from '../../../vfs/engine/format/errors.ts'
import { INODE_FLAGS, isDir, isReg, isSymlink } from '../../../vfs/engine/format/inode.ts'
import type { Inode } from '../../../vfs/engine/format/inode.ts'
import { Ext4Image, ROOT_INO } from '../../../vfs/engine/reader/image.ts'
import type { ImageEntry } from '../../../vfs/engine/reader/image.ts'
import type { ReadAt } from '../../../vfs/engine/reader/read-at.ts'
import type { Verifier } from '../../../vfs/engine/reader/verify.ts'

/** The reader answered but overstepped a bound the harness sets: a failure, and the walk stops. */
export class FuzzLimitError extends Error {
  readonly code: 'FUZZ_TIMEOUT' | 'FUZZ_OVERREAD'
  constructor(code: 'FUZZ_TIMEOUT' | 'FUZZ_OVERREAD', message: string) {
    super(message)
    this.name = 'FuzzLimitError'
    this.code = code
  }
}

export interface WalkOptions {
  /** undefined: the reader's default (checksums verified when the image has metadata_csum). */
  verifier?: Verifier | undefined
  /** Wall-clock budget for the whole image. */
  deadlineMs: number
  /** Bytes one reader call may read from the device (default: twice the image, and 1 MiB). */
  maxBytesPerCall?: number
  /** Inodes visited at most (a damaged directory can name any inode). */
  maxInodes?: number
}

export interface WalkFailure {
  step: string
  code: string
  message: string
  stack: string
}

export interface WalkResult {
  opened: boolean
  inodes: number
  calls: number
  lookups: number
  /** A lookup that found another inode than the walk did for the same path (expected 0 on an undamaged image). */
  lookupMismatches: number
  /** Errors thrown, by code: the coded ones expected of damage, and the failures. */
  codes: Record<string, number>
  failures: WalkFailure[]
  /** A digest of what each call that succeeded returned, by call ("zero-inode" for an all-zero inode). */
  digests: Map<string, string>
}

const MIB = 1 << 20
const MAX_GROUPS = 256
/** A directory with more names than this gets only its last one looked up (not a missing one): each lookup scans it. */
const LOOKUP_ALL_BELOW = 32
const RESERVED_INODES = 11
const JOURNAL_INO = 8
const LOOKUP_ERRNOS = new Set(['ENOENT', 'ENOTDIR', 'ELOOP', 'ENAMETOOLONG'])
/** What a probe (a missing name, a path through a symlink) answers on an undamaged image: not counted. */
const PROBE_ANSWERS = new Set(['ENOENT', 'ENOTDIR', 'ELOOP'])
/**
 * Children visited of a directory with more entries than this: its first and
 * last ones. Every block of it is still read; visiting all 3,000 inodes of the
 * big directory would make each image 30 times slower for the same code paths.
 */
const VISIT_ALL_BELOW = 48
const VISIT_SAMPLE = 24

/** Reads through inner, refusing once the deadline has passed or the current call has read too much. */
class BoundedReadAt implements ReadAt {
  readonly size: number
  bytes = 0
  private readonly inner: ReadAt
  private readonly deadline: number
  private readonly cap: number

  constructor(inner: ReadAt, deadline: number, cap: number) {
    this.inner = inner
    this.size = inner.size
    this.deadline = deadline
    this.cap = cap
  }

  checkDeadline(): void {
    if (performance.now() > this.deadline) throw new FuzzLimitError('FUZZ_TIMEOUT', 'the walk ran past its deadline')
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.checkDeadline()
    this.bytes += length
    if (this.bytes > this.cap) throw new FuzzLimitError('FUZZ_OVERREAD', `one call read ${this.bytes} bytes (cap ${this.cap}); the last read was ${length} at ${offset}`)
    return this.inner.read(offset, length)
  }
}

/** The code an error is counted under, and whether it is one a damaged image may legitimately cause. */
export function classify(err: unknown, pathInput: boolean): { code: string; ok: boolean } {
  if (err instanceof FormatError || err instanceof BlockDevError) return { code: err.code, ok: true }
  if (err instanceof VfsError) return { code: err.code, ok: pathInput && LOOKUP_ERRNOS.has(err.code) }
  if (err instanceof FuzzLimitError) return { code: err.code, ok: false }
  if (err instanceof Error) return { code: err.name, ok: false }
  return { code: typeof err, ok: false }
}

/** The offsets a file is read at, 1 MiB each: its start, its middle and its end (a damaged size may be huge). */
function pieces(size: number): number[] {
  const end = Math.min(size, 2 ** 52)
  const at = new Set([0, MIB, Math.floor(end / 2 / MIB) * MIB, Math.max(0, end - MIB)])
  return [...at].filter((o) => o < end)
}

export async function walkImage(dev: ReadAt, opts: WalkOptions): Promise<WalkResult> {
  // Reading the whole image once in a call is legitimate (a directory may fill it); more is amplification.
  const bounded = new BoundedReadAt(dev, performance.now() + opts.deadlineMs, opts.maxBytesPerCall ?? 2 * dev.size + MIB)
  const maxInodes = opts.maxInodes ?? 10_000
  const result: WalkResult = { opened: false, inodes: 0, calls: 0, lookups: 0, lookupMismatches: 0, codes: {}, failures: [], digests: new Map() }

  /** One reader call: its error counted (and kept when it is a failure); a harness limit ends the walk. */
  const call = async <T>(step: string, fn: () => Promise<T>, pathInput = false, probe = false): Promise<T | undefined> => {
    bounded.bytes = 0
    result.calls++
    try {
      // Also here: a walk can loop over what it already read without calling the device.
      bounded.checkDeadline()
      const value = await fn()
      if (step !== 'open') result.digests.set(step, digest(value))
      return value
    } catch (err) {
      const { code, ok } = classify(err, pathInput)
      if (probe && PROBE_ANSWERS.has(code)) return undefined
      result.codes[code] = (result.codes[code] ?? 0) + 1
      if (!ok) result.failures.push({ step, code, message: err instanceof Error ? err.message : String(err), stack: err instanceof Error ? (err.stack ?? '') : '' })
      if (err instanceof FuzzLimitError) throw err
      return undefined
    }
  }

  try {
    const img = await call('open', () => Ext4Image.open(bounded, opts.verifier === undefined ? {} : { verifier: opts.verifier }))
    if (img === undefined) return result
    result.opened = true
    for (let g = 0; g < Math.min(img.groupCount, MAX_GROUPS); g++) await call(`checkBitmaps(${g})`, () => img.checkBitmaps(g))
    for (let ino = 1; ino <= Math.min(RESERVED_INODES, img.sb.inodesCount); ino++) {
      const inode = await call(`readInode(${ino})`, () => img.readInode(ino))
      if (ino === JOURNAL_INO && inode !== undefined && (inode.flags & INODE_FLAGS.EXTENTS) !== 0) await call('readFile(journal)', () => img.readFile(ino, inode, 0, 64 * 1024))
    }

    const lookups: Array<{ path: string; ino: number | undefined }> = []
    const visited = new Set<number>([ROOT_INO])
    const queue: Array<{ ino: number; path: string }> = [{ ino: ROOT_INO, path: '' }]
    while (queue.length > 0 && result.inodes < maxInodes) {
      const { ino, path } = queue.shift() ?? { ino: 0, path: '' }
      result.inodes++
      const inode = await call(`readInode(${ino})`, () => img.readInode(ino))
      if (inode === undefined) continue
      if (isDir(inode)) {
        const entries = (await call(`readDir(${ino})`, () => img.readDir(ino, inode))) ?? []
        const named = entries.filter((e) => e.text !== '.' && e.text !== '..')
        const sample = named.length < LOOKUP_ALL_BELOW ? named : named.slice(-1)
        for (const e of sample) lookups.push({ path: `${path}/${e.text}`, ino: e.inode })
        if (named.length < LOOKUP_ALL_BELOW) lookups.push({ path: `${path}/no-such-name`, ino: undefined })
        const visit = named.length < VISIT_ALL_BELOW ? named : [...named.slice(0, VISIT_SAMPLE - 8), ...named.slice(-8)]
        for (const e of visit) {
          if (visited.has(e.inode)) continue
          visited.add(e.inode)
          queue.push({ ino: e.inode, path: `${path}/${e.text}` })
        }
      } else if (isReg(inode)) {
        for (const at of pieces(inode.size)) await call(`readFile(${ino}@${at})`, () => img.readFile(ino, inode, at, MIB))
      } else if (isSymlink(inode)) {
        await call(`readlink(${ino})`, () => readlinkOf(img, ino, inode))
        lookups.push({ path: `${path}/through-the-link`, ino: undefined })
      }
    }
    for (const l of lookups) {
      result.lookups++
      const found = await call(`lookup(${l.path})`, () => img.lookup(l.path), true, l.ino === undefined)
      // Names are compared as text here: a damaged name that is not UTF-8 cannot be looked up by its text.
      if (l.ino !== undefined && found !== undefined && found !== l.ino) result.lookupMismatches++
    }
  } catch (err) {
    if (!(err instanceof FuzzLimitError)) throw err
  }
  return result
}

/**
 * What a call returned, reduced to a digest, so a walk of a damaged image can
 * be compared call by call with the undamaged one. An inode of zeros has no
 * checksum to fail (a never-written slot of a lazily initialised table reads
 * so; the verifier accepts it, as e2fsprogs does): marked as such.
 */
function digest(value: unknown): string {
  const h = createHash('sha1')
  if (value === undefined) return ''
  if (Buffer.isBuffer(value)) return h.update(value).digest('hex')
  if (Array.isArray(value)) {
    for (const e of value as ImageEntry[]) h.update(`${e.inode}:${e.fileType}:${e.name.toString('hex')}/`)
    return h.digest('hex')
  }
  if (typeof value === 'object' && value !== null && 'mode' in value) {
    const inode = value as Inode
    if (inode.mode === 0 && inode.linksCount === 0 && inode.flags === 0 && inode.size === 0 && inode.block.every((b) => b === 0)) return 'zero-inode'
    return h.update(JSON.stringify({ ...inode, block: inode.block.toString('hex') })).digest('hex')
  }
  return h.update(JSON.stringify(value)).digest('hex')
}

function readlinkOf(img: Ext4Image, ino: number, inode: Inode): Promise<Buffer> {
  return img.readlink(ino, inode)
}
