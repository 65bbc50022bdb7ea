/*
 * Path resolution on the client, one LOOKUP per component from the mount
 * root (RFC 1813 §3.3.3: LOOKUP takes one name, and the server does not
 * follow symlinks), through the name cache. Symlinks are followed here,
 * at most MAX_SYMLINKS per walk (ELOOP beyond, as Linux's 40). An absolute
 * target resolves from the mount root: the client cannot see above it. `..`
 * goes back to the directory the walk came from (zero RPCs), never above the
 * root. ESTALE makes the whole operation run again once from the root, with
 * the name cache of every directory it went through dropped.
 *
 * The name cache is shared by every identity calling through the client
 * (client.as(cred), the FUSE mount's callers), but a caller may only be
 * answered from it in a directory it is known to search: as Linux checks
 * MAY_EXEC on each directory through its per-credential access cache
 * before using a cached dentry, a cached name (positive or negative) is
 * used only while the attribute cache holds a LOOKUP grant for this
 * caller's identity on the directory, and a caller known to be refused
 * is refused at once (EACCES). Otherwise the LOOKUP goes to the server as
 * the caller, and its outcome is that grant (found or NOENT: granted;
 * ACCES: denied).
 */
import { ACCESS3_LOOKUP, ftype3, nfsstat3 } from '../xdr/generated/nfs3.ts'
import type { fattr3 } from '../xdr/generated/nfs3.ts'
import type { AttrCache } from './cache/attr-cache.ts'
import type { NameCache } from './cache/name-cache.ts'
import { NfsError, isNfsError } from './errors.ts'
import { identityKey } from './identity.ts'
import type { Nfs3 } from './nfs3.ts'

export const MAX_SYMLINKS = 40

export interface WalkContext {
  readonly root: Buffer
  readonly nfs: Nfs3
  readonly attrs: AttrCache
  readonly names: NameCache
}

export interface Resolved {
  fh: Buffer
  /** Last known attributes (maybe not fresh; the type is always right). */
  attrs: fattr3
}

export interface ResolvedParent {
  /** The directory that holds (or will hold) the last component. */
  dir: Buffer
  name: string
}

/** Components of a path relative to the mount root ('/a//b/' → ['a', 'b']); trailing '/' noted. */
export function splitPath(path: string): { parts: string[]; trailingSlash: boolean } {
  const parts = path.split('/').filter(p => p !== '' && p !== '.')
  return { parts, trailingSlash: path.length > 1 && path.endsWith('/') }
}

/**
 * Run op (which walks with the `visited` list it is given) and, on ESTALE,
 * drop what was cached for the directories it went through and run it once
 * more from the root. A STALE status means the call did not execute, so
 * running a non-idempotent op again is safe.
 */
export async function retryStale<T>(ctx: WalkContext, op: (visited: Buffer[]) => Promise<T>): Promise<T> {
  const visited: Buffer[] = []
  try {
    return await op(visited)
  } catch (err) {
    if (!isNfsError(err, 'NFS3ERR_STALE')) throw err
    for (const d of visited) {
      ctx.names.dropDir(d)
      ctx.attrs.invalidate(d)
    }
    return await op([])
  }
}

/** Attributes of fh: the cache's if known at all (type never changes), else GETATTR. */
async function knownAttrs(ctx: WalkContext, fh: Buffer, path: string): Promise<fattr3> {
  return ctx.attrs.peek(fh) ?? (await ctx.nfs.call('GETATTR', { object: { data: fh } }, { path })).obj_attributes
}

/**
 * One component: the name cache where this caller may search dir, else
 * LOOKUP as the caller (whose answer, positive or NOENT, is cached).
 */
export async function lookupName(ctx: WalkContext, dir: Buffer, name: string, path: string): Promise<Buffer> {
  const fh = await lookupNameOrAbsent(ctx, dir, name, path)
  if (fh === null) throw NfsError.fromStatus(nfsstat3.NFS3ERR_NOENT, 'LOOKUP', path)
  return fh
}

/**
 * lookupName, with null for a name that does not exist (NFS3ERR_NOENT,
 * from the server or the name cache): a missing name is an answer, not a
 * failure, to callers that expect many (a FUSE LOOKUP before each create),
 * and no error with its stack is made for it. `fromServer`: the name cache
 * is not asked (its answer is still updated).
 */
export async function lookupNameOrAbsent(ctx: WalkContext, dir: Buffer, name: string, path: string, opts: { fromServer?: boolean } = {}): Promise<Buffer | null> {
  const who = identityKey(ctx.nfs.cred)
  const search = ctx.attrs.accessOf(dir, who, ACCESS3_LOOKUP)
  if (search === 0) throw NfsError.fromStatus(nfsstat3.NFS3ERR_ACCES, 'LOOKUP', path)
  if (search === ACCESS3_LOOKUP && opts.fromServer !== true) {
    const cached = ctx.names.lookup(dir, name)
    if (cached.kind === 'positive') return cached.fh
    if (cached.kind === 'negative') return null
  }
  const r = await ctx.nfs.raw('LOOKUP', { what: { dir: { data: dir }, name: Buffer.from(name) } })
  if (r.status === nfsstat3.NFS3_OK) {
    ctx.attrs.noteAccess(dir, who, ACCESS3_LOOKUP, ACCESS3_LOOKUP)
    const fh = Buffer.from(r.resok.object.data)
    ctx.names.addPositive(dir, name, fh)
    return fh
  }
  if (r.status === nfsstat3.NFS3ERR_NOENT) {
    ctx.attrs.noteAccess(dir, who, ACCESS3_LOOKUP, ACCESS3_LOOKUP)
    ctx.names.addNegative(dir, name)
    return null
  }
  if (r.status === nfsstat3.NFS3ERR_ACCES) {
    ctx.attrs.noteAccess(dir, who, ACCESS3_LOOKUP, 0)
  }
  throw NfsError.fromStatus(r.status, 'LOOKUP', path)
}

/**
 * After a create-like call of the context's caller succeeded in dir: the
 * server let it add a name there, which takes search permission too
 * (write and execute on the directory), so names cached in dir may answer
 * it from now on. A directory the call made (`made`, with the attributes
 * the server returned) is searchable by its maker when its owner may
 * execute it: the server made the maker its owner, as whatever identity it
 * maps the caller to (root_squash, all_squash: the anonymous uid, which it
 * then also judges the maker as), and an AUTH_SYS server judges owners by
 * the owner bits.
 */
export function noteCreated(ctx: WalkContext, dir: Buffer, made?: { fh: Buffer; attrs: fattr3 | null }): void {
  const who = identityKey(ctx.nfs.cred)
  ctx.attrs.noteAccess(dir, who, ACCESS3_LOOKUP, ACCESS3_LOOKUP)
  const a = made?.attrs
  if (made === undefined || a === undefined || a === null) return
  // Its owner while its uid stays the same: a later mode change of our own keeps this grant (attr-cache.ts).
  ctx.attrs.noteMaker(made.fh, who)
  if (a.type !== ftype3.NF3DIR) return
  if ((a.mode & 0o100) !== 0) ctx.attrs.noteAccess(made.fh, who, ACCESS3_LOOKUP, ACCESS3_LOOKUP)
}

async function walkOnce(ctx: WalkContext, path: string, follow: boolean, visited: Buffer[]): Promise<Resolved> {
  const { parts, trailingSlash } = splitPath(path)
  const queue = [...parts]
  // Directories from the root to the current one; `..` pops.
  const stack: Buffer[] = [ctx.root]
  visited.push(ctx.root)
  let links = 0
  let result: Buffer = ctx.root
  let resultAttrs: fattr3 | undefined
  while (queue.length > 0) {
    const name = queue.shift() ?? ''
    const dir = stack[stack.length - 1] ?? ctx.root
    if (name === '..') {
      if (stack.length > 1) stack.pop()
      result = stack[stack.length - 1] ?? ctx.root
      resultAttrs = undefined
      continue
    }
    const fh = await lookupName(ctx, dir, name, path)
    const a = await knownAttrs(ctx, fh, path)
    const more = queue.length > 0 || trailingSlash
    if (a.type === ftype3.NF3LNK && (more || follow)) {
      if (++links > MAX_SYMLINKS) throw NfsError.client('ELOOP', 'walk', path)
      const target = (await ctx.nfs.call('READLINK', { symlink: { data: fh } }, { path })).data.toString()
      if (target.startsWith('/')) stack.length = 1
      queue.unshift(...splitPath(target).parts)
      result = stack[stack.length - 1] ?? ctx.root
      resultAttrs = undefined
      continue
    }
    if (a.type === ftype3.NF3DIR) {
      stack.push(fh)
      visited.push(fh)
    } else if (more) {
      throw NfsError.client('ENOTDIR', 'walk', path)
    }
    result = fh
    resultAttrs = a
  }
  resultAttrs ??= await knownAttrs(ctx, result, path)
  if (trailingSlash && resultAttrs.type !== ftype3.NF3DIR) throw NfsError.client('ENOTDIR', 'walk', path)
  return { fh: result, attrs: resultAttrs }
}

/**
 * Resolve a path inside the export to a handle. follow: whether a symlink
 * as the last component is followed (stat) or returned (lstat).
 * `visited` collects the directories gone through, for retryStale.
 */
export function walk(ctx: WalkContext, path: string, opts: { follow: boolean }, visited: Buffer[] = []): Promise<Resolved> {
  return walkOnce(ctx, path, opts.follow, visited)
}

/** Resolve all but the last component: where a create, remove or rename happens. */
export async function walkParent(ctx: WalkContext, path: string, visited: Buffer[] = []): Promise<ResolvedParent> {
  // POSIX: rmdir("x/.") and mkdir("x/..") are EINVAL, never an operation on x.
  const last = path.split('/').filter(p => p !== '').pop()
  const { parts } = splitPath(path)
  const name = parts.pop()
  if (name === undefined || last === '.' || last === '..') throw NfsError.client('EINVAL', 'walk', path)
  const dir = await walkOnce(ctx, parts.join('/'), true, visited)
  if (dir.attrs.type !== ftype3.NF3DIR) throw NfsError.client('ENOTDIR', 'walk', path)
  return { dir: dir.fh, name }
}
