/* The subset of the XDR language (RFC 4506 §6) and RPC language (RFC 5531 §12) that our .x files use. */

export type Value = number | string // a literal or a constant's name

export type Prim = 'int' | 'uint' | 'hyper' | 'uhyper' | 'bool' | 'float' | 'double'

export type TypeSpec = { kind: 'prim'; prim: Prim } | { kind: 'named'; name: string }

/** One declaration (RFC 4506 §6.3 "declaration"). */
export type Declaration =
  | { kind: 'void' }
  | { kind: 'plain'; name: string; type: TypeSpec }
  | { kind: 'fixedArray'; name: string; type: TypeSpec; size: Value }
  | { kind: 'varArray'; name: string; type: TypeSpec; max: Value | null }
  | { kind: 'fixedOpaque'; name: string; size: Value }
  | { kind: 'varOpaque'; name: string; max: Value | null }
  | { kind: 'string'; name: string; max: Value | null }
  | { kind: 'optional'; name: string; type: TypeSpec }

export interface UnionArm {
  /** Case labels (values or constant names); empty for the default arm. */
  cases: Value[]
  decl: Declaration
}

export type DefinitionBody =
  | { kind: 'const'; name: string; value: number }
  | { kind: 'typedef'; decl: Declaration & { name: string } }
  | { kind: 'enum'; name: string; members: { name: string; value: Value }[] }
  | { kind: 'struct'; name: string; fields: (Declaration & { name: string })[] }
  | {
      kind: 'union'
      name: string
      discriminant: { name: string; type: TypeSpec }
      arms: UnionArm[]
      defaultArm: Declaration | null
    }
  | { kind: 'program'; name: string; number: number; versions: VersionDef[] }

export type Definition = DefinitionBody & { source: string }

export interface VersionDef {
  name: string
  number: number
  procedures: { name: string; number: number; result: TypeSpec | null; arg: TypeSpec | null }[]
}
