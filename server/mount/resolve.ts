/*
 * The directory a MNT path names below an export, with symlinks resolved
 * the way rpc.mountd does (nfs-utils utils/mountd/mountd.c get_rootfh():
 * realpath(3) of the path, then the export check on the result), inside
 * the export only:
 *
 * - a relative target continues from the link's directory; an absolute one
 *   is read in the server's namespace, where the export's path names its
 *   root (for a local export that is the host directory itself), so
 *   `/srv/x/a` below the export `/srv/x` is its `a`;
 * - a target that leaves the export (`..` above its root, or an absolute
 *   path outside it) is MNT3ERR_ACCES: mountd refuses a resolved path no
 *   export covers the same way. We refuse it even when it lands in another
 *   export (the client can mount that export's path itself), and without
 *   looking whether it exists out there (mountd answers NOENT for a missing
 *   one: that would tell a client what exists outside its export);
 * - a missing component is MNT3ERR_NOENT; a component or result that is not
 *   a directory is MNT3ERR_NOTDIR (RFC 1813 §5.2.1 mounts directories;
 *   mountd also lets a regular file be mounted, for NFSv2 clients that
 *   export single files);
 * - more than MAX_SYMLINKS links is a loop: MNT3ERR_ACCES, as mountd's
 *   stat(2) failing with ELOOP gives.
 */
import { mountstat3 as MNT } from '../../xdr/generated/mount.ts'
import type { mountstat3 } from '../../xdr/generated/mount.ts'
import type { FileRef, Vfs } from '../../vfs/types.ts'

/** Links followed per MNT before it is a loop (Linux's MAXSYMLINKS, which realpath(3) meets as ELOOP). */
export const MAX_SYMLINKS = 40

/** Path components walked per MNT, links included: bounds the work a hostile tree of long targets can cause. */
export const MAX_COMPONENTS = 4096

export type Resolved = { ok: true; ref: FileRef } | { ok: false; status: Exclude<mountstat3, 0>; reason: string }

const refuse = (status: Exclude<mountstat3, 0>, reason: string): Resolved => ({ ok: false, status, reason })

const DOT = Buffer.from('.')
const DOTDOT = Buffer.from('..')
const SLASH = 0x2f

/** Components of a path, `.` and empty ones dropped; bytes, since a symlink's target need not be UTF-8. */
function split(path: Buffer): Buffer[] {
  const out: Buffer[] = []
  let start = 0
  for (let i = 0; i <= path.length; i++) {
    if (i < path.length && path[i] !== SLASH) continue
    const part = path.subarray(start, i)
    if (part.length > 0 && !part.equals(DOT)) out.push(part)
    start = i + 1
  }
  return out
}

/**
 * Walk `subpath` (components below the export root, no `.` or `..`: the
 * export table refuses those in the MNT path itself) from the root of
 * `vfs`, following symlinks. `exportPath` is the export's path, against
 * which absolute targets are read. Errors from the backend other than its
 * ENOENT/ENOTDIR are thrown to the caller.
 */
export async function resolveMountPath(vfs: Vfs, exportPath: string, subpath: string): Promise<Resolved> {
  const exportParts = split(Buffer.from(exportPath))
  // The directories walked so far, the export root first: `..` pops one.
  const stack: FileRef[] = [vfs.root()]
  const todo = split(Buffer.from(subpath))
  let links = 0
  let walked = 0
  while (todo.length > 0) {
    const name = todo.shift() as Buffer
    if (++walked > MAX_COMPONENTS) return refuse(MNT.MNT3ERR_ACCES, 'too many path components')
    if (name.equals(DOTDOT)) {
      if (stack.length === 1) return refuse(MNT.MNT3ERR_ACCES, 'a symlink leads above the export')
      stack.pop()
      continue
    }
    const dir = stack[stack.length - 1] as FileRef
    const next = await vfs.lookup(dir, name)
    if (next.attr.type === 'dir') {
      stack.push(next.ref)
      continue
    }
    if (next.attr.type !== 'symlink') return refuse(MNT.MNT3ERR_NOTDIR, 'not a directory')
    if (++links > MAX_SYMLINKS) return refuse(MNT.MNT3ERR_ACCES, 'too many levels of symbolic links')
    const target = await vfs.readlink(next.ref)
    if (target[0] === SLASH) {
      const parts = split(target)
      const inside = exportParts.every((p, i) => parts[i]?.equals(p) === true)
      if (!inside) return refuse(MNT.MNT3ERR_ACCES, 'an absolute symlink leads out of the export')
      stack.length = 1
      todo.unshift(...parts.slice(exportParts.length))
    } else {
      todo.unshift(...split(target))
    }
  }
  return { ok: true, ref: stack[stack.length - 1] as FileRef }
}
