/*
 * Operations that change the namespace or attributes, by path: each resolves
 * the parent through the walk, sends one procedure, and keeps the name cache
 * in step with what it did (CREATE/MKDIR/SYMLINK/LINK add a positive entry,
 * REMOVE/RMDIR a negative one, RENAME both). The directory's wcc data keeps
 * its cached attributes current without flushing the name cache.
 */
import { createmode3, ftype3 } from '../xdr/generated/nfs3.ts'
import type { fattr3 } from '../xdr/generated/nfs3.ts'
import { sattr } from './attrs.ts'
import type { SetAttrs } from './attrs.ts'
import { NfsError, isNfsError } from './errors.ts'
import { withCred } from './identity.ts'
import type { CallCredential } from './rpc/auth.ts'
import { noteCreated, walk, walkParent } from './walk.ts'
import type { Resolved, WalkContext } from './walk.ts'

export interface OpsContext extends WalkContext {
  /** Run fn with ESTALE retry, naming path in errors. */
  op<T>(path: string, fn: (visited: Buffer[]) => Promise<T>): Promise<T>
  getattr(fh: Buffer, opts?: { revalidate?: boolean }): Promise<fattr3>
}

const name3 = (s: string): Buffer => Buffer.from(s)

/** After our own CREATE-like call: the new handle (LOOKUP when the server did not send one). */
async function settle(ctx: OpsContext, dir: Buffer, name: string, obj: { data: Buffer } | null, path: string): Promise<Resolved> {
  if (obj === null) {
    ctx.names.remove(dir, name)
    const r = await walk(ctx, path, { follow: false })
    return r
  }
  const fh = Buffer.from(obj.data)
  ctx.names.addPositive(dir, name, fh)
  const attrs = await ctx.getattr(fh)
  noteCreated(ctx, dir, { fh, attrs })
  return { fh, attrs }
}

export function mkdirOne(ctx: OpsContext, path: string, mode: number): Promise<Resolved> {
  return ctx.op(path, async visited => {
    const { dir, name } = await walkParent(ctx, path, visited)
    const r = await ctx.nfs.call('MKDIR', { where: { dir: { data: dir }, name: name3(name) }, attributes: sattr({ mode }) })
    if (r.obj !== null) ctx.names.markComplete(r.obj.data)
    return settle(ctx, dir, name, r.obj, path)
  })
}

export async function mkdirRecursive(ctx: OpsContext, path: string, mode: number): Promise<void> {
  const parts = path.split('/').filter(p => p !== '' && p !== '.')
  for (let i = 1; i <= parts.length; i++) {
    const prefix = parts.slice(0, i).join('/')
    try {
      await mkdirOne(ctx, prefix, mode)
    } catch (err) {
      if (!isNfsError(err, 'NFS3ERR_EXIST')) throw err
      const r = await ctx.op(prefix, v => walk(ctx, prefix, { follow: true }, v))
      if (r.attrs.type !== ftype3.NF3DIR) throw NfsError.client('ENOTDIR', 'mkdir', prefix)
    }
  }
}

export interface CreateOptions {
  mode?: number
  /** GUARDED: EEXIST if the name exists (O_EXCL). Default UNCHECKED (O_CREAT). */
  exclusive?: boolean
}

export function createFile(ctx: OpsContext, path: string, opts: CreateOptions = {}): Promise<Resolved> {
  return ctx.op(path, async visited => {
    const { dir, name } = await walkParent(ctx, path, visited)
    const mode = opts.exclusive === true ? createmode3.GUARDED : createmode3.UNCHECKED
    const r = await ctx.nfs.call('CREATE', {
      where: { dir: { data: dir }, name: name3(name) },
      how: { mode, obj_attributes: sattr({ mode: opts.mode ?? 0o644 }) },
    })
    return settle(ctx, dir, name, r.obj, path)
  })
}

/** REMOVE or RMDIR; the name becomes a negative entry, the object's attributes (nlink) stale. */
export function removeName(ctx: OpsContext, path: string, proc: 'REMOVE' | 'RMDIR'): Promise<void> {
  return ctx.op(path, async visited => {
    const { dir, name } = await walkParent(ctx, path, visited)
    const old = ctx.names.peek(dir, name)
    await ctx.nfs.call(proc, { object: { dir: { data: dir }, name: name3(name) } })
    ctx.names.addNegative(dir, name)
    if (old !== undefined) {
      ctx.attrs.invalidate(old)
      ctx.names.dropDir(old)
    }
  })
}

export function rename(ctx: OpsContext, from: string, to: string): Promise<void> {
  return ctx.op(from, async visited => {
    const src = await walkParent(ctx, from, visited)
    const dst = await walkParent(ctx, to, visited)
    const moved = ctx.names.peek(src.dir, src.name)
    const replaced = ctx.names.peek(dst.dir, dst.name)
    await ctx.nfs.call('RENAME', {
      from: { dir: { data: src.dir }, name: name3(src.name) },
      to: { dir: { data: dst.dir }, name: name3(dst.name) },
    })
    ctx.names.addNegative(src.dir, src.name)
    if (moved !== undefined) ctx.names.addPositive(dst.dir, dst.name, moved)
    else ctx.names.remove(dst.dir, dst.name)
    // RFC 1813 §3.3.14: the moved object's ctime may change, a replaced one loses a link.
    if (moved !== undefined) ctx.attrs.invalidate(moved)
    if (replaced !== undefined && (moved === undefined || !replaced.equals(moved))) ctx.attrs.invalidate(replaced)
  })
}

export function symlink(ctx: OpsContext, target: string, path: string): Promise<Resolved> {
  return ctx.op(path, async visited => {
    const { dir, name } = await walkParent(ctx, path, visited)
    const r = await ctx.nfs.call('SYMLINK', {
      where: { dir: { data: dir }, name: name3(name) },
      symlink: { symlink_attributes: sattr({}), symlink_data: Buffer.from(target) },
    })
    return settle(ctx, dir, name, r.obj, path)
  })
}

export function readlink(ctx: OpsContext, path: string): Promise<string> {
  return ctx.op(path, async visited => {
    const r = await walk(ctx, path, { follow: false }, visited)
    return (await ctx.nfs.call('READLINK', { symlink: { data: r.fh } })).data.toString()
  })
}

/** A hard link; the existing path's last symlink is not followed (Linux link(2)). */
export function link(ctx: OpsContext, existing: string, newPath: string): Promise<void> {
  return ctx.op(newPath, async visited => {
    const file = await walk(ctx, existing, { follow: false }, visited)
    const { dir, name } = await walkParent(ctx, newPath, visited)
    await ctx.nfs.call('LINK', { file: { data: file.fh }, link: { dir: { data: dir }, name: name3(name) } })
    ctx.names.addPositive(dir, name, file.fh)
    noteCreated(ctx, dir)
  })
}

/** SETATTR by handle (as cred when given: an open file's truncate goes as its opener); its wcc data refreshes the cache. */
export async function setattrFh(ctx: WalkContext, fh: Buffer, s: SetAttrs, cred?: CallCredential): Promise<void> {
  await ctx.nfs.call('SETATTR', { object: { data: fh }, new_attributes: sattr(s), guard: null }, withCred(cred))
}

export function setattrPath(ctx: OpsContext, path: string, s: SetAttrs): Promise<void> {
  return ctx.op(path, async visited => {
    const r = await walk(ctx, path, { follow: true }, visited)
    await setattrFh(ctx, r.fh, s)
  })
}
