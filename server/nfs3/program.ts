/*
 * The NFS version 3 program (RFC 1813 §3.3): every procedure of the
 * generated table bound to its handler. A missing or misspelled procedure is
 * a compile error (defineProgram is typed against the table).
 */
import { NFS_PROGRAM } from '../../xdr/generated/nfs3.ts'
import type { CallContext, RpcProgram } from '../rpc/program.ts'
import { defineProgram } from '../rpc/program.ts'
import type { Nfs3Context } from './context.ts'
import { createNfs3Context } from './context.ts'
import type { Nfs3Host } from './host.ts'
import { access } from './procs/access.ts'
import { commit } from './procs/commit.ts'
import { create } from './procs/create.ts'
import { fsinfo } from './procs/fsinfo.ts'
import { fsstat } from './procs/fsstat.ts'
import { getattr } from './procs/getattr.ts'
import { link } from './procs/link.ts'
import { lookup } from './procs/lookup.ts'
import { mkdir } from './procs/mkdir.ts'
import { mknod } from './procs/mknod.ts'
import { pathconf } from './procs/pathconf.ts'
import { read } from './procs/read.ts'
import { readdir } from './procs/readdir.ts'
import { readdirplus } from './procs/readdirplus.ts'
import { readlink } from './procs/readlink.ts'
import { remove } from './procs/remove.ts'
import { rename } from './procs/rename.ts'
import { rmdir } from './procs/rmdir.ts'
import { setattr } from './procs/setattr.ts'
import { symlink } from './procs/symlink.ts'
import { write } from './procs/write.ts'

export function createNfs3Program(host: Nfs3Host): RpcProgram {
  /** Adapt a handler written against Nfs3Context to the RPC layer's (args, call). */
  const bind =
    <A, R>(handler: (args: A, ctx: Nfs3Context) => Promise<R>) =>
    (args: A, call: CallContext): Promise<R> =>
      handler(args, createNfs3Context(host, call))

  return defineProgram(
    NFS_PROGRAM,
    'NFS_V3',
    {
      // RFC 1813 §3.3.0: no work, no arguments, no results; a ping.
      NFSPROC3_NULL: () => undefined,
      NFSPROC3_GETATTR: bind(getattr),
      NFSPROC3_SETATTR: bind(setattr),
      NFSPROC3_LOOKUP: bind(lookup),
      NFSPROC3_ACCESS: bind(access),
      NFSPROC3_READLINK: bind(readlink),
      NFSPROC3_READ: bind(read),
      NFSPROC3_WRITE: bind(write),
      NFSPROC3_CREATE: bind(create),
      NFSPROC3_MKDIR: bind(mkdir),
      NFSPROC3_SYMLINK: bind(symlink),
      NFSPROC3_MKNOD: bind(mknod),
      NFSPROC3_REMOVE: bind(remove),
      NFSPROC3_RMDIR: bind(rmdir),
      NFSPROC3_RENAME: bind(rename),
      NFSPROC3_LINK: bind(link),
      NFSPROC3_READDIR: bind(readdir),
      NFSPROC3_READDIRPLUS: bind(readdirplus),
      NFSPROC3_FSSTAT: bind(fsstat),
      NFSPROC3_FSINFO: bind(fsinfo),
      NFSPROC3_PATHCONF: bind(pathconf),
      NFSPROC3_COMMIT: bind(commit),
    },
    {
      // RFC 1813 §4.5: replies the duplicate request cache keeps and replays (knfsd RC_REPLBUFF).
      nonIdempotent: [
        'NFSPROC3_SETATTR',
        'NFSPROC3_WRITE',
        'NFSPROC3_CREATE',
        'NFSPROC3_MKDIR',
        'NFSPROC3_SYMLINK',
        'NFSPROC3_MKNOD',
        'NFSPROC3_REMOVE',
        'NFSPROC3_RMDIR',
        'NFSPROC3_RENAME',
        'NFSPROC3_LINK',
      ],
    },
  )
}
