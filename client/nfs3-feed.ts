/*
 * Which attributes each NFSv3 reply carries, and for which handle: every
 * one of them refreshes the attribute cache (issue 4 point 4). Typed per
 * procedure, so a missing procedure is a compile error.
 */
import type { AttrCache } from './cache/attr-cache.ts'
import type { Nfs3Args, Nfs3ProcName, Nfs3Res } from './nfs3-types.ts'
import type { diropargs3, nfsstat3, post_op_attr, post_op_fh3, wcc_data } from '../xdr/generated/nfs3.ts'

/** g: the call's generation (AttrCache.callStarted), so a late reply cannot overwrite newer attributes. */
type Feeder<P extends Nfs3ProcName> = (a: Nfs3Args<P>, r: Nfs3Res<P>, c: AttrCache, g: number) => void
type Feeders = { readonly [P in Nfs3ProcName]: Feeder<P> }

function post(c: AttrCache, fh: Buffer | undefined, a: post_op_attr, g: number): void {
  if (fh !== undefined && a !== null) c.update(fh, a, g)
}

type CreatedRes =
  | { status: 0; resok: { obj: post_op_fh3; obj_attributes: post_op_attr; dir_wcc: wcc_data } }
  | { status: Exclude<nfsstat3, 0>; resfail: { dir_wcc: wcc_data } }

/** CREATE, MKDIR, SYMLINK, MKNOD: the new object (when the server names it) and the directory. */
function created(a: { where: diropargs3 }, r: CreatedRes, c: AttrCache, g: number): void {
  if (r.status === 0) {
    post(c, r.resok.obj?.data, r.resok.obj_attributes, g)
    c.applyWcc(a.where.dir.data, r.resok.dir_wcc, g)
  } else {
    c.applyWcc(a.where.dir.data, r.resfail.dir_wcc, g)
  }
}

export const FEED: Feeders = {
  NULL: () => undefined,
  GETATTR: (a, r, c, g) => {
    if (r.status === 0) c.update(a.object.data, r.resok.obj_attributes, g)
  },
  SETATTR: (a, r, c, g) => { c.applyWcc(a.object.data, r.status === 0 ? r.resok.obj_wcc : r.resfail.obj_wcc, g) },
  LOOKUP: (a, r, c, g) => {
    if (r.status === 0) {
      post(c, r.resok.object.data, r.resok.obj_attributes, g)
      post(c, a.what.dir.data, r.resok.dir_attributes, g)
    } else {
      post(c, a.what.dir.data, r.resfail.dir_attributes, g)
    }
  },
  ACCESS: (a, r, c, g) => { post(c, a.object.data, r.status === 0 ? r.resok.obj_attributes : r.resfail.obj_attributes, g) },
  READLINK: (a, r, c, g) => { post(c, a.symlink.data, r.status === 0 ? r.resok.symlink_attributes : r.resfail.symlink_attributes, g) },
  READ: (a, r, c, g) => { post(c, a.file.data, r.status === 0 ? r.resok.file_attributes : r.resfail.file_attributes, g) },
  WRITE: (a, r, c, g) => { c.applyWcc(a.file.data, r.status === 0 ? r.resok.file_wcc : r.resfail.file_wcc, g) },
  CREATE: created,
  MKDIR: created,
  SYMLINK: created,
  MKNOD: created,
  REMOVE: (a, r, c, g) => { c.applyWcc(a.object.dir.data, r.status === 0 ? r.resok.dir_wcc : r.resfail.dir_wcc, g) },
  RMDIR: (a, r, c, g) => { c.applyWcc(a.object.dir.data, r.status === 0 ? r.resok.dir_wcc : r.resfail.dir_wcc, g) },
  RENAME: (a, r, c, g) => {
    const w = r.status === 0 ? r.resok : r.resfail
    c.applyWcc(a.from.dir.data, w.fromdir_wcc, g)
    c.applyWcc(a.to.dir.data, w.todir_wcc, g)
  },
  LINK: (a, r, c, g) => {
    const w = r.status === 0 ? r.resok : r.resfail
    post(c, a.file.data, w.file_attributes, g)
    c.applyWcc(a.link.dir.data, w.linkdir_wcc, g)
  },
  READDIR: (a, r, c, g) => { post(c, a.dir.data, r.status === 0 ? r.resok.dir_attributes : r.resfail.dir_attributes, g) },
  READDIRPLUS: (a, r, c, g) => {
    if (r.status !== 0) {
      post(c, a.dir.data, r.resfail.dir_attributes, g)
      return
    }
    post(c, a.dir.data, r.resok.dir_attributes, g)
    for (const e of r.resok.reply.entries) post(c, e.name_handle?.data, e.name_attributes, g)
  },
  FSSTAT: (a, r, c, g) => { post(c, a.fsroot.data, r.status === 0 ? r.resok.obj_attributes : r.resfail.obj_attributes, g) },
  FSINFO: (a, r, c, g) => { post(c, a.fsroot.data, r.status === 0 ? r.resok.obj_attributes : r.resfail.obj_attributes, g) },
  PATHCONF: (a, r, c, g) => { post(c, a.object.data, r.status === 0 ? r.resok.obj_attributes : r.resfail.obj_attributes, g) },
  COMMIT: (a, r, c, g) => { c.applyWcc(a.file.data, r.status === 0 ? r.resok.file_wcc : r.resfail.file_wcc, g) },
}

/** The handle a procedure operates on: the one a STALE status speaks of. */
export const SUBJECT: { readonly [P in Nfs3ProcName]: (a: Nfs3Args<P>) => Buffer | undefined } = {
  NULL: () => undefined,
  GETATTR: a => a.object.data,
  SETATTR: a => a.object.data,
  LOOKUP: a => a.what.dir.data,
  ACCESS: a => a.object.data,
  READLINK: a => a.symlink.data,
  READ: a => a.file.data,
  WRITE: a => a.file.data,
  CREATE: a => a.where.dir.data,
  MKDIR: a => a.where.dir.data,
  SYMLINK: a => a.where.dir.data,
  MKNOD: a => a.where.dir.data,
  REMOVE: a => a.object.dir.data,
  RMDIR: a => a.object.dir.data,
  RENAME: a => a.from.dir.data,
  LINK: a => a.file.data,
  READDIR: a => a.dir.data,
  READDIRPLUS: a => a.dir.data,
  FSSTAT: a => a.fsroot.data,
  FSINFO: a => a.fsroot.data,
  PATHCONF: a => a.object.data,
  COMMIT: a => a.file.data,
}
