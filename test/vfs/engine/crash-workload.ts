/*
 * The crash checker's seeded workload (crash-check.ts runs it on the engine and on MemoryVfs as the
 * model, one operation on each in turn): creates, renames across directories, hard links,
 * truncates, FILE_SYNC appends and overwrites, unlinks, long-named creates that split /big into an
 * htree (linear → indexed, then leaf splits), and unlink-while-open.
 *
 * Unlink-while-open, NFS-shaped: NFSv3 has no open, so a client that removes a file it holds open
 * renames it to a hidden `.nfs…` name (the Linux client's silly rename), keeps writing through its
 * handle, and removes that name at close; a handle held by a client that did not do so goes stale
 * at once. Both happen here: `unlink-held` removes a file whose handle is then written and read
 * (ESTALE on both sides), and `silly` renames, writes through the handle, removes the hidden name,
 * then reads through the handle (ESTALE). The remove ops say which inode they free (`frees`), so
 * the checker asserts that no crash state after their reply still has it, nor an orphan list.
 */
import type { FileRef, Vfs } from '../../../vfs/types.ts'
import { bytes, rng } from './engine-helpers.ts'

export interface Op {
  text: string
  run: (vfs: Vfs) => Promise<void>
  /** The file whose data this op changes in place (an overwrite, or a truncate that shrinks). */
  overwrite?: string
  truncateTo?: number
  /** A remove of a held file: the handle it frees, per side (set when it ran). */
  frees?: Map<Vfs, FileRef>
  /** What the op met through a held handle, per side ('ok' or an error code): equal on both. */
  outcome?: Map<Vfs, string>
}

const OWNER = { uid: 1000, gid: 1000 }


export async function resolve(vfs: Vfs, p: string): Promise<FileRef> {
  let ref = vfs.root()
  for (const part of p.split('/').filter((x) => x !== '')) ref = (await vfs.lookup(ref, Buffer.from(part))).ref
  return ref
}

function split(p: string): [string, Buffer] {
  const i = p.lastIndexOf('/')
  return [p.slice(0, i), Buffer.from(p.slice(i + 1))]
}

/** Errors a path-based op may meet because an earlier op moved things (same on model and engine). */
async function tolerant(f: () => Promise<unknown>): Promise<void> {
  try {
    await f()
  } catch (err) {
    const code = (err as { code?: string }).code
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return
    throw err
  }
}

/** 'ok', or the error code `f` failed with (anything else is thrown on). */
async function outcomeOf(f: () => Promise<unknown>): Promise<string> {
  try {
    await f()
    return 'ok'
  } catch (err) {
    const code = (err as { code?: string }).code
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code
    throw err
  }
}

/** The file's bytes through `vfs`, or undefined when the path does not resolve. */
export async function readAll(vfs: Vfs, p: string): Promise<Buffer | undefined> {
  let ref: FileRef
  try {
    ref = await resolve(vfs, p)
  } catch {
    return undefined
  }
  const parts: Buffer[] = []
  for (let off = 0n; ;) {
    const r = await vfs.read(ref, off, 1 << 20)
    if (r.data.length === 0) break
    parts.push(r.data)
    off += BigInt(r.data.length)
    if (r.eof) break
  }
  return Buffer.concat(parts)
}

/**
 * Write and read through a held handle (none held: the file was gone already, same on both sides).
 * Once `frees` says the handle's inode was freed, anything but ESTALE throws: the run stops there.
 */
function useHeld(text: string, held: Map<Vfs, FileRef>, frees: Map<Vfs, FileRef>, data: Buffer): Op {
  const outcome = new Map<Vfs, string>()
  return {
    text, outcome,
    run: async (v) => {
      const ref = held.get(v)
      if (ref === undefined) return void outcome.set(v, 'none held')
      const a = await outcomeOf(async () => v.getattr(ref))
      const w = await outcomeOf(async () => v.write(ref, (await v.getattr(ref)).size, data, 'file_sync'))
      const r = await outcomeOf(async () => v.read(ref, 0n, 1 << 16))
      const got = a === w && w === r ? w : `getattr ${a}, write ${w}, read ${r}`
      if (frees.has(v) && got !== 'ESTALE') throw new Error(`${text}: the freed handle answered ${got}, not ESTALE`)
      outcome.set(v, got)
    },
  }
}

/** The unlink-while-open ops of `f` (see the header). */
function unlinkWhileOpen(f: string, silly: boolean, dataSeed: number, n: number): Op[] {
  const held = new Map<Vfs, FileRef>()
  const frees = new Map<Vfs, FileRef>()
  const hold = async (v: Vfs, p: string): Promise<FileRef | undefined> => {
    try {
      const ref = await resolve(v, p)
      held.set(v, ref)
      return ref
    } catch {
      return undefined
    }
  }
  const removeHeld = (p: string) => async (v: Vfs): Promise<void> => {
    const ref = held.get(v)
    const [dir, name] = split(p)
    await tolerant(async () => {
      await v.remove(await resolve(v, dir), name)
      // Its last name gone: the inode must be freed (a hard link elsewhere keeps it, then not).
      if (ref !== undefined && (await outcomeOf(async () => v.getattr(ref))) === 'ESTALE') frees.set(v, ref)
    })
  }
  if (!silly) {
    return [
      { text: `unlink-held ${f}`, frees, run: async (v) => { await hold(v, f); await removeHeld(f)(v) } },
      useHeld(`use held ${f} after unlink`, held, frees, bytes(dataSeed, 700)),
    ]
  }
  const [dir] = split(f)
  const hidden = `${dir}/.nfs${String(n).padStart(8, '0')}`
  return [
    { text: `silly rename ${f} ${hidden}`, run: async (v) => { if ((await hold(v, f)) !== undefined) await tolerant(async () => v.rename(await resolve(v, dir), split(f)[1], await resolve(v, dir), split(hidden)[1])) } },
    useHeld(`write held ${hidden}`, held, frees, bytes(dataSeed, 5_000)),
    { text: `remove ${hidden}`, frees, run: removeHeld(hidden) },
    useHeld(`use held ${hidden} after remove`, held, frees, bytes(dataSeed + 1, 300)),
  ]
}

/**
 * `ops` operations after the setup (mkdirs), plus `splitCreates` creates in /big with names of
 * `splitNameLength` bytes (longer names: fewer entries per block, a split sooner).
 * Ops resolve paths when they run, so one that lost its file fails the same way on both sides.
 */
export function makeWorkload(seed: number, ops: number, splitCreates: number, splitNameLength = 51): Op[] {
  const r = rng(seed)
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)] as T
  const dirs = ['/a', '/b', '/c', '/a/d']
  const out: Op[] = []
  for (const d of [...dirs, '/big']) {
    out.push({ text: `mkdir ${d}`, run: async (v) => { const [p, n] = split(d); await tolerant(async () => v.mkdir(await resolve(v, p), n, { mode: 0o755 }, OWNER)) } })
  }
  const files: string[] = []
  const fileName = (): string => `${pick(dirs)}/f${Math.floor(r() * 12)}`
  let splitLeft = splitCreates
  // Creates, then one of each kind in a seeded order (unlink-while-open both ways), so that even
  // a short workload has them all; then seeded picks.
  const first = ['create', 'create', ...['append', 'overwrite', 'truncate', 'rename', 'link', 'create', 'unlink-open', 'remove', 'unlink-open']
    .map((k) => [r(), k] as const).sort((a, b) => a[0] - b[0]).map(([, k]) => k)]
  let sillyNext = r() < 0.5
  for (let i = 0; i < ops; i++) {
    if (splitLeft > 0 && r() < splitCreates / (splitCreates + ops - i)) {
      const n = splitCreates - splitLeft--
      const name = `entry-${String(n).padStart(4, '0')}-`.padEnd(splitNameLength, 'y')
      out.push({ text: `create /big/${name}`, run: async (v) => tolerant(async () => v.create(await resolve(v, '/big'), Buffer.from(name), { how: 'guarded', attr: { mode: 0o644 } }, OWNER)) })
      i--
      continue
    }
    const kind = files.length === 0 ? 'create' : (first.shift() ?? pick(['create', 'create', 'append', 'append', 'overwrite', 'truncate', 'rename', 'link', 'remove', 'unlink-open']))
    const f = kind === 'create' ? fileName() : pick(files)
    const dataSeed = Math.floor(r() * 2 ** 31)
    switch (kind) {
      case 'create': {
        files.push(f)
        out.push({ text: `create ${f}`, run: async (v) => { const [p, n] = split(f); await tolerant(async () => v.create(await resolve(v, p), n, { how: 'unchecked', attr: { mode: 0o640 } }, OWNER)) } })
        break
      }
      case 'append': {
        const len = 1 + Math.floor(r() * (r() < 0.3 ? 40_000 : 3_000))
        out.push({ text: `append ${f} ${len}`, run: async (v) => tolerant(async () => {
          const ref = await resolve(v, f)
          const size = (await v.getattr(ref)).size
          await v.write(ref, size, bytes(dataSeed, len), 'file_sync')
        }) })
        break
      }
      case 'overwrite': {
        const off = Math.floor(r() * 8_000)
        const len = 1 + Math.floor(r() * 6_000)
        out.push({ text: `overwrite ${f} ${off}+${len}`, overwrite: f, run: async (v) => tolerant(async () => v.write(await resolve(v, f), BigInt(off), bytes(dataSeed, len), 'file_sync')) })
        break
      }
      case 'truncate': {
        const size = Math.floor(r() * 20_000)
        out.push({ text: `truncate ${f} ${size}`, overwrite: f, truncateTo: size, run: async (v) => tolerant(async () => v.setattr(await resolve(v, f), { size: BigInt(size) })) })
        break
      }
      case 'rename': {
        const to = fileName()
        files.push(to)
        out.push({ text: `rename ${f} ${to}`, run: async (v) => { const [p, n] = split(f); const [p2, n2] = split(to); await tolerant(async () => v.rename(await resolve(v, p), n, await resolve(v, p2), n2)) } })
        break
      }
      case 'link': {
        const to = fileName()
        files.push(to)
        out.push({ text: `link ${f} ${to}`, run: async (v) => { const [p2, n2] = split(to); await tolerant(async () => v.link(await resolve(v, f), await resolve(v, p2), n2)) } })
        break
      }
      case 'remove': {
        out.push({ text: `remove ${f}`, run: async (v) => { const [p, n] = split(f); await tolerant(async () => v.remove(await resolve(v, p), n)) } })
        break
      }
      case 'unlink-open': {
        out.push(...unlinkWhileOpen(f, sillyNext, dataSeed, i))
        sillyNext = !sillyNext
        break
      }
    }
  }
  return out
}
