/*
 * Opening a file by handle (the FUSE layer knows handles, not paths): what
 * openFile in file.ts does after its path walk, with the same close-to-open
 * rule. The caller has created the file itself when `created` is set (its
 * attributes came with CREATE, no GETATTR needed); truncation is left to
 * the caller (FUSE sends it as SETATTR).
 */
import { ftype3 } from '../xdr/generated/nfs3.ts'
import type { fattr3 } from '../xdr/generated/nfs3.ts'
import { stampOf } from './cache/block-cache.ts'
import { NfsError } from './errors.ts'
import type { FileData } from './file-data.ts'
import { NfsFile } from './file.ts'
import type { OpenFlags } from './file.ts'
import type { CallCredential } from './rpc/auth.ts'

export interface OpenFhOptions {
  /** Named in errors (default the handle in hex). */
  path?: string
  /** The file was just created by the caller: skip the revalidating GETATTR. */
  created?: boolean
  /** The caller has just revalidated the attributes (an ACCESS reply carried them): skip the GETATTR. */
  revalidated?: boolean
  /** The opener's credential: the file's reads, writes and truncation go as it. */
  cred?: CallCredential
}

/** An NfsFile on a handle; revalidates its attributes (nfs(5) cto) unless just created. */
export async function openFh(data: FileData, fh: Buffer, flags: Exclude<OpenFlags, 'w' | 'w+' | 'wx'>, opts: OpenFhOptions = {}): Promise<NfsFile> {
  const path = opts.path ?? fh.toString('hex')
  const c = data.client
  const known = opts.created === true || opts.revalidated === true
  const a: fattr3 = known ? (c.attrs.peek(fh) ?? (await c.getattr(fh))) : await c.getattr(fh, { revalidate: true })
  if (a.type === ftype3.NF3DIR) throw NfsError.client('EISDIR', 'open', path)
  const before = data.peekState(fh)
  if (!(before?.busy ?? false)) data.blocks.validate(data.keyOf(fh), stampOf(a))
  const state = data.acquire(fh, flags !== 'r')
  return new NfsFile(data, state, path, flags, opts.cred)
}
