import type { Codec } from './codec.ts'

/*
 * The shape of the procedure tables the generator emits from each .x
 * `program` block. Server dispatch and client stubs are both driven by
 * these tables, so argument and result types flow from the .x file.
 */

export interface ProcedureDef<A = unknown, R = unknown> {
  readonly name: string
  readonly proc: number
  readonly args: Codec<A>
  readonly res: Codec<R>
}

export interface VersionDef {
  readonly name: string
  readonly vers: number
  // Codec<T> is invariant in T, so a table of differently typed procedures needs `any` here;
  // ArgsOf/ResOf recover the precise types from the `as const` tables.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly procs: Readonly<Record<string, ProcedureDef<any, any>>>
}

export interface ProgramDef {
  readonly name: string
  readonly prog: number
  readonly versions: Readonly<Record<string, VersionDef>>
}

export type ArgsOf<P> = P extends ProcedureDef<infer A> ? A : never
export type ResOf<P> = P extends ProcedureDef<unknown, infer R> ? R : never
