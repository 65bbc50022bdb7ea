/* Types of the NFSv3 call layer, derived from the generated procedure table (xdr/generated/nfs3.ts). */
import type { NFS_PROGRAM } from '../xdr/generated/nfs3.ts'
import type { ArgsOf, ResOf } from '../xdr/runtime/program.ts'

export type Nfs3Procs = typeof NFS_PROGRAM.versions.NFS_V3.procs
type Short<K> = K extends `NFSPROC3_${infer S}` ? S : never
/** 'GETATTR', 'LOOKUP', … (the RFC name without NFSPROC3_). */
export type Nfs3ProcName = Short<keyof Nfs3Procs>
export type Nfs3Args<P extends Nfs3ProcName> = ArgsOf<Nfs3Procs[`NFSPROC3_${P}`]>
export type Nfs3Res<P extends Nfs3ProcName> = ResOf<Nfs3Procs[`NFSPROC3_${P}`]>
type OkOf<R> = R extends { status: 0; resok: infer O } ? O : R extends { status: number } ? never : R
/** The resok arm of a procedure's result (undefined for NULL). */
export type Nfs3Ok<P extends Nfs3ProcName> = OkOf<Nfs3Res<P>>
