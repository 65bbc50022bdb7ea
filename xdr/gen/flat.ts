import type { Definition, Prim, TypeSpec } from './ast.ts'

/*
 * Flat encoders (xdr/gen/overrides.ts FLAT_ENCODERS): a fixed-size struct,
 * nested structs and enums included, written in place after one room check
 * (XdrWriter.room) with XdrWriter's own range checks (xdr/runtime/checks.ts),
 * instead of a call and a room check a field. Same bytes, same refusals; a
 * refused struct leaves nothing written (advance() comes last).
 */

/** What the emitter knows of a spec's types. */
export interface SpecTypes {
  specPath: string
  def(name: string): Definition | undefined
  /** Follows typedefs of plain primitives. */
  primOf(t: TypeSpec): Prim | null
}

/** A flat encoder's statement per primitive, at byte `at + o` of the scratch `s` (xdr/runtime/checks.ts). */
const PRIM_FLAT: Readonly<Record<string, { size: number; write: (o: string, e: string) => string; check: string | null }>> = {
  int: { size: 4, write: (o, e) => `s.setInt32(${o}, checkI32(${e}))`, check: 'checkI32' },
  uint: { size: 4, write: (o, e) => `s.setUint32(${o}, checkU32(${e}))`, check: 'checkU32' },
  hyper: { size: 8, write: (o, e) => `s.setBigInt64(${o}, checkI64(${e}))`, check: 'checkI64' },
  uhyper: { size: 8, write: (o, e) => `s.setBigUint64(${o}, checkU64(${e}))`, check: 'checkU64' },
  // XdrWriter.bool: any truthy value is TRUE, with no check.
  bool: { size: 4, write: (o, e) => `s.setUint32(${o}, ${e} ? 1 : 0)`, check: null },
}

/** `flat`: the structs given flat encoders (FLAT_ENCODERS; a test passes none to get the per-field ones). */
/** A flat struct's primitives in wire order, with the expression that reads each from `expr`. */
function flatten(types: SpecTypes, name: string, expr: string): { prim: string; expr: string }[] {
  const d = types.def(name)
  if (d?.kind !== 'struct') throw new Error(`${types.specPath}: FLAT_ENCODERS ${name} is not a struct`)
  return d.fields.flatMap((f) => {
    const e = `${expr}.${f.name}`
    const refuse = new Error(`${types.specPath}: FLAT_ENCODERS ${name}.${f.name} is not fixed-size`)
    if (f.kind !== 'plain') throw refuse
    const p = types.primOf(f.type)
    if (p !== null && p !== 'float' && p !== 'double') return [{ prim: p, expr: e }]
    if (f.type.kind !== 'named') throw refuse
    const kind = types.def(f.type.name)?.kind
    // RFC 4506 §4.3: an enum is an int on the wire (the per-field encoder writes it as w.i32, unchecked against its values).
    if (kind === 'enum') return [{ prim: 'int', expr: e }]
    if (kind === 'struct') return flatten(types, f.type.name, e)
    throw refuse
  })
}

/** The range checks the flat encoders of `names` call (xdr/runtime/checks.ts), for the module's import. */
export function flatChecks(types: SpecTypes, names: Iterable<string>): string[] {
  const used = new Set<string>()
  for (const name of names) {
    for (const p of flatten(types, name, 'v')) {
      const c = PRIM_FLAT[p.prim]?.check
      if (c !== null && c !== undefined) used.add(c)
    }
  }
  return [...used].sort()
}

/** The body of a flat struct's encode(w, v). */
export function flatEncode(types: SpecTypes, name: string): string[] {
  let size = 0
  const lines = flatten(types, name, 'v').map((p) => {
    const f = PRIM_FLAT[p.prim]
    if (f === undefined) throw new Error(`${types.specPath}: FLAT_ENCODERS ${name}: no flat ${p.prim}`)
    const line = `    ${f.write(size === 0 ? 'at' : `at + ${size}`, p.expr)}`
    size += f.size
    return line
  })
  return [`    // ${size} bytes in place, one room check (xdr/gen/overrides.ts FLAT_ENCODERS).`, `    const at = w.room(${size})`, '    const s = w.scratch', ...lines, `    w.advance(${size})`]
}
