import type { Declaration, Definition, TypeSpec, Value } from './ast.ts'
import { flatChecks, flatEncode } from './flat.ts'
import type { SpecTypes } from './flat.ts'
import { BYTE_STRINGS, FLAT_ENCODERS, OVERRIDES } from './overrides.ts'

/*
 * Emits one TypeScript module per .x file: for every XDR type a TS type and
 * a codec of the same name (enums: a constants object of the type's name and
 * `<name>Codec`), and for every program an `as const` procedure table. The
 * mapping rules are in xdr/README.md.
 */

type Def<K extends Definition['kind']> = Definition & { kind: K }
type Named = Declaration & { name: string }

const PRIM_TS = { int: 'number', uint: 'number', hyper: 'bigint', uhyper: 'bigint', bool: 'boolean', float: 'number', double: 'number' }
const PRIM_CODEC = { int: 'xdr_int', uint: 'xdr_uint', hyper: 'xdr_hyper', uhyper: 'xdr_uhyper', bool: 'xdr_bool', float: '', double: '' }
const PRIM_READ = { int: 'r.i32()', uint: 'r.u32()', hyper: 'r.i64()', uhyper: 'r.u64()', bool: 'r.bool()', float: '', double: '' }
const PRIM_WRITE = { int: 'w.i32', uint: 'w.u32', hyper: 'w.i64', uhyper: 'w.u64', bool: 'w.bool', float: '', double: '' }
export function emitModule(defs: Definition[], specPath: string, flat: ReadonlySet<string> = FLAT_ENCODERS[specPath] ?? new Set()): string {
  return new Emitter(defs, specPath, flat).module()
}

class Emitter {
  private readonly byName = new Map<string, Definition>()
  private readonly consts = new Map<string, number>()
  /** List-node structs (RFC 4506 §4.19 linked lists) and the name of their link field. */
  private readonly listNodes = new Map<string, string>()
  private readonly out: string[] = []
  private readonly defs: Definition[]
  private readonly specPath: string
  private readonly flat: ReadonlySet<string>

  constructor(defs: Definition[], specPath: string, flat: ReadonlySet<string>) {
    this.defs = defs
    this.specPath = specPath
    this.flat = flat
    for (const d of defs) {
      if (d.kind === 'const') this.consts.set(d.name, d.value)
      else if (d.kind === 'typedef') this.byName.set(d.decl.name, d)
      else this.byName.set(d.name, d)
      if (d.kind === 'enum') for (const m of d.members) this.consts.set(m.name, this.value(m.value))
    }
    for (const d of defs) {
      if (d.kind !== 'struct') continue
      const last = d.fields[d.fields.length - 1]
      if (last !== undefined && this.optionalTarget(last) === d.name) this.listNodes.set(d.name, last.name)
    }
  }

  private value(v: Value): number {
    if (typeof v === 'number') return v
    const c = this.consts.get(v)
    if (c === undefined) throw new Error(`${this.specPath}: unknown constant ${v}`)
    return c
  }

  /** The struct an optional declaration points to, directly (`T *x`) or through a typedef (`typedef T *L`). */
  private optionalTarget(d: Declaration): string | null {
    if (d.kind === 'optional' && d.type.kind === 'named') return d.type.name
    if (d.kind === 'plain' && d.type.kind === 'named') {
      const t = this.byName.get(d.type.name)
      if (t?.kind === 'typedef' && t.decl.kind === 'optional' && t.decl.type.kind === 'named') return t.decl.type.name
    }
    return null
  }

  private listOf(d: Declaration): string | null {
    const t = this.optionalTarget(d)
    return t !== null && this.listNodes.has(t) ? t : null
  }

  private isEnum(name: string): boolean {
    return this.byName.get(name)?.kind === 'enum'
  }

  /** Follows typedefs of plain primitives, so `uint32` reads inline as `r.u32()`. */
  private primOf(t: TypeSpec): keyof typeof PRIM_TS | null {
    if (t.kind === 'prim') return t.prim
    const d = this.byName.get(t.name)
    if (d?.kind === 'typedef' && d.decl.kind === 'plain') return this.primOf(d.decl.type)
    return null
  }

  private tsOf(t: TypeSpec): string {
    if (t.kind === 'prim') return PRIM_TS[t.prim]
    if (!this.byName.has(t.name)) throw new Error(`${this.specPath}: unknown type ${t.name}`)
    return t.name
  }

  private codecOf(t: TypeSpec): string {
    if (t.kind === 'prim') return PRIM_CODEC[t.prim]
    return this.isEnumLike(t) ? `${t.name}Codec` : t.name
  }

  private read(t: TypeSpec): string {
    const p = this.primOf(t)
    return p !== null ? PRIM_READ[p] : `${this.codecOf(t)}.decode(r)`
  }

  private write(t: TypeSpec, expr: string): string {
    const p = this.primOf(t)
    return p !== null ? `${PRIM_WRITE[p]}(${expr})` : `${this.codecOf(t)}.encode(w, ${expr})`
  }

  /** Smallest encoded size, for capping array counts by the bytes left. */
  private minSize(t: TypeSpec, seen = new Set<string>()): number {
    if (t.kind === 'prim') return t.prim === 'hyper' || t.prim === 'uhyper' || t.prim === 'double' ? 8 : 4
    if (seen.has(t.name)) return 4
    seen.add(t.name)
    const d = this.byName.get(t.name)
    if (d === undefined) return 4
    if (d.kind === 'struct') return d.fields.reduce((s, f) => s + this.declMin(f, seen), 0)
    if (d.kind === 'typedef') return this.declMin(d.decl, seen)
    return 4
  }

  private declMin(d: Declaration, seen: Set<string>): number {
    switch (d.kind) {
      case 'void':
        return 0
      case 'plain':
        return this.minSize(d.type, seen)
      case 'fixedOpaque':
        return (this.value(d.size) + 3) & ~3
      case 'fixedArray':
        return this.value(d.size) * this.minSize(d.type, seen)
      default:
        return 4
    }
  }

  private max(v: Value | null): string {
    return v === null ? '0xffffffff' : String(this.value(v))
  }

  /** TS type, decode expression and encode statement of one declaration. */
  private decl(d: Named, owner: string): { ts: string; dec: string; enc: (e: string) => string } {
    const list = this.listOf(d)
    if (list !== null) return { ts: `${list}[]`, dec: `${list}List.decode(r)`, enc: (e) => `${list}List.encode(w, ${e})` }
    switch (d.kind) {
      case 'plain':
        return { ts: this.tsOf(d.type), dec: this.read(d.type), enc: (e) => this.write(d.type, e) }
      case 'fixedOpaque': {
        const n = this.value(d.size)
        return { ts: 'Buffer', dec: `r.fixedOpaque(${n})`, enc: (e) => `w.fixedOpaque(${e}, ${n})` }
      }
      case 'varOpaque': {
        const m = this.max(d.max)
        return { ts: 'Buffer', dec: `r.opaque(${m})`, enc: (e) => `w.opaque(${e}, ${m})` }
      }
      case 'string': {
        const m = this.max(d.max)
        // NFS names and paths are bytes, not text (STYLE.md §3.6): they stay Buffer.
        if (BYTE_STRINGS.has(owner)) return { ts: 'Buffer', dec: `r.opaque(${m})`, enc: (e) => `w.opaque(${e}, ${m})` }
        return { ts: 'string', dec: `r.string(${m})`, enc: (e) => `w.string(${e}, ${m})` }
      }
      case 'fixedArray': {
        const n = this.value(d.size)
        const c = this.codecOf(d.type)
        return {
          ts: `${this.tsOf(d.type)}[]`,
          dec: `decodeFixedArray(r, ${c}, ${n}, ${this.minSize(d.type)})`,
          enc: (e) => `encodeFixedArray(w, ${c}, ${e}, ${n})`,
        }
      }
      case 'varArray': {
        const m = this.max(d.max)
        const c = this.codecOf(d.type)
        return {
          ts: `${this.tsOf(d.type)}[]`,
          dec: `decodeArray(r, ${c}, ${m}, ${this.minSize(d.type)})`,
          enc: (e) => `encodeArray(w, ${c}, ${e}, ${m})`,
        }
      }
      case 'optional': {
        const inner = this.tsOf(d.type)
        return {
          ts: `${inner} | null`,
          dec: `r.bool() ? ${this.read(d.type)} : null`,
          enc: (e) => `if (${e} === null) w.bool(false)\n    else {\n      w.bool(true)\n      ${this.write(d.type, e)}\n    }`,
        }
      }
      case 'void':
        throw new Error(`${this.specPath}: void in ${owner} has no type`)
    }
  }

  private emit(...lines: string[]): void {
    this.out.push(...lines)
  }

  private doc(source: string): void {
    const body = source.replace(/\*\//g, '*\\/').split('\n').map((l) => ` * ${l.trimEnd()}`.trimEnd())
    this.emit('/**', ' * ```xdr', ...body, ' * ```', ' */')
  }

  module(): string {
    this.emit(
      `// GENERATED by xdr/gen from ${this.specPath} - do not edit; run npm run gen`,
      '/* c8 ignore start */',
      "import { XdrDecodeError } from '../runtime/errors.ts'",
      "import type { XdrReader } from '../runtime/reader.ts'",
      "import type { XdrWriter } from '../runtime/writer.ts'",
      // NDMP's specs have no program (it is not ONC RPC): no ProgramDef to import there.
      ...(this.defs.some((d) => d.kind === 'program') ? ["import type { ProgramDef } from '../runtime/program.ts'"] : []),
      ...(flatChecks(this.types, this.flat).length > 0 ? [`import { ${flatChecks(this.types, this.flat).join(', ')} } from '../runtime/checks.ts'`] : []),
      "import {\n  type Codec,\n  decodeArray,\n  decodeFixedArray,\n  encodeArray,\n  encodeFixedArray,\n  listCodec,\n  xdr_bool,\n  xdr_hyper,\n  xdr_int,\n  xdr_uhyper,\n  xdr_uint,\n  xdr_void,\n} from '../runtime/codec.ts'",
    )
    const overrides = OVERRIDES[this.specPath] ?? {}
    for (const [name, from] of Object.entries(overrides)) this.emit(`import { ${name} } from '${from}'`, `export { ${name} }`)
    this.emit('')
    for (const d of this.defs) {
      const name = d.kind === 'typedef' ? d.decl.name : d.name
      if (name in overrides) continue
      switch (d.kind) {
        case 'const':
          this.doc(d.source)
          this.emit(`export const ${d.name} = ${d.value}`, '')
          break
        case 'typedef':
          this.typedef(d)
          break
        case 'enum':
          this.enumDef(d)
          break
        case 'struct':
          this.struct(d)
          break
        case 'union':
          this.union(d)
          break
        case 'program':
          this.program(d)
          break
      }
    }
    this.emit(
      '// Keep the imports used whatever the spec holds.',
      'export const _codecs = { xdr_bool, xdr_hyper, xdr_int, xdr_uhyper, xdr_uint, xdr_void, decodeArray, decodeFixedArray, encodeArray, encodeFixedArray, listCodec, XdrDecodeError }',
      'export type _io = [XdrReader, XdrWriter]',
      '',
    )
    return this.out.join('\n')
  }

  private typedef(d: Def<'typedef'>): void {
    const name = d.decl.name
    this.doc(d.source)
    const list = this.listOf(d.decl)
    if (d.decl.kind === 'optional' && list !== null) {
      // Lazy delegation: the typedef may precede its list node in the .x file.
      this.emit(
        `export type ${name} = ${list}[]`,
        `export const ${name}: Codec<${name}> = {`,
        `  encode(w, v) {`,
        `    ${list}List.encode(w, v)`,
        '  },',
        `  decode(r) {`,
        `    return ${list}List.decode(r)`,
        '  },',
        '}',
        '',
      )
      return
    }
    if (d.decl.kind === 'plain' && d.decl.type.kind === 'named' && this.isEnumLike(d.decl.type)) {
      const t = d.decl.type.name
      this.emit(`export type ${name} = ${t}`, `export const ${name} = ${t}`, `export const ${name}Codec: Codec<${name}> = ${t}Codec`, '')
      return
    }
    const { ts, dec, enc } = this.decl(d.decl, name)
    this.emit(
      `export type ${name} = ${ts}`,
      `export const ${name}: Codec<${name}> = {`,
      `  encode(w, v) {`,
      `    ${enc('v')}`,
      '  },',
      `  decode(r) {`,
      `    return ${dec}`,
      '  },',
      '}',
      '',
    )
  }

  private enumDef(d: Def<'enum'>): void {
    const members = d.members.map((m) => ({ name: m.name, value: this.value(m.value) }))
    this.doc(d.source)
    this.emit(`export const ${d.name} = {`, ...members.map((m) => `  ${m.name}: ${m.value},`), '} as const')
    this.emit(`export type ${d.name} = ${members.map((m) => String(m.value)).join(' | ')}`)
    this.emit(`export const ${d.name}Names: Readonly<Record<number, string>> = {`, ...members.map((m) => `  ${m.value}: '${m.name}',`), '}')
    this.emit(
      `const ${d.name}Values: ReadonlySet<number> = new Set([${members.map((m) => m.value).join(', ')}])`,
      `export const ${d.name}Codec: Codec<${d.name}> = {`,
      '  encode(w, v) {',
      '    w.i32(v)',
      '  },',
      '  decode(r) {',
      '    const v = r.i32()',
      `    // RFC 4506 §4.3: only the declared values are legal.`,
      `    if (!${d.name}Values.has(v)) throw new XdrDecodeError('XDR_BAD_ENUM', \`${d.name}: \${v}\`)`,
      `    return v as ${d.name}`,
      '  },',
      '}',
      '',
    )
  }

  private isFlat(name: string): boolean {
    return this.flat.has(name)
  }

  /** What xdr/gen/flat.ts needs to know of this spec's types. */
  private get types(): SpecTypes {
    return { specPath: this.specPath, def: (name) => this.byName.get(name), primOf: (t) => this.primOf(t) }
  }

  private struct(d: Def<'struct'>): void {
    const link = this.listNodes.get(d.name)
    const fields = d.fields.filter((f) => f.name !== link)
    const parts = fields.map((f) => ({ f, ...this.decl(f, d.name) }))
    this.doc(d.source)
    this.emit(`export interface ${d.name} {`, ...parts.map((p) => `  ${p.f.name}: ${p.ts}`), '}')
    this.emit(`export const ${d.name}: Codec<${d.name}> = {`, '  encode(w, v) {')
    if (this.isFlat(d.name)) this.emit(...flatEncode(this.types, d.name))
    else for (const p of parts) this.emit(`    ${p.enc(`v.${p.f.name}`)}`)
    if (parts.length === 0) this.emit('    void w', '    void v')
    this.emit('  },', '  decode(r) {', '    return {', ...parts.map((p) => `      ${p.f.name}: ${p.dec},`), '    }', '  },', '}')
    if (link !== undefined) this.emit(`export const ${d.name}List: Codec<${d.name}[]> = listCodec(${d.name})`)
    this.emit('')
  }

  private union(d: Def<'union'>): void {
    this.doc(d.source)
    const disc = d.discriminant
    const boolDisc = this.primOf(disc.type) === 'bool'
    // `switch (bool) { TRUE: T x; FALSE/default: void }` is T | null (STYLE.md §3.6).
    const trueArm = d.arms.find((a) => a.cases.some((c) => c === 'TRUE'))
    const others = d.arms.filter((a) => a !== trueArm)
    if (
      boolDisc &&
      trueArm !== undefined &&
      trueArm.decl.kind !== 'void' &&
      others.every((a) => a.decl.kind === 'void') &&
      (d.defaultArm === null || d.defaultArm.kind === 'void')
    ) {
      const { ts, dec, enc } = this.decl(trueArm.decl, d.name)
      this.emit(
        `export type ${d.name} = ${ts} | null`,
        `export const ${d.name}: Codec<${d.name}> = {`,
        '  encode(w, v) {',
        '    if (v === null) w.bool(false)',
        '    else {',
        '      w.bool(true)',
        `      ${enc('v')}`,
        '    }',
        '  },',
        '  decode(r) {',
        `    return r.bool() ? ${dec} : null`,
        '  },',
        '}',
        '',
      )
      return
    }
    const dt = disc.type
    const discTs = this.tsOf(dt)
    const lit = (c: Value): string => (boolDisc ? (c === 'TRUE' ? 'true' : 'false') : String(this.value(c)))
    const arms = d.arms.map((a) => ({ labels: a.cases.map(lit), decl: a.decl }))
    const listed = arms.flatMap((a) => a.labels)
    const variants: string[] = []
    const armField = (decl: Declaration): string | null => (decl.kind === 'void' ? null : decl.name)
    for (const a of arms) {
      const f = a.decl.kind === 'void' ? '' : `; ${a.decl.name}: ${this.decl(a.decl, d.name).ts}`
      variants.push(`{ ${disc.name}: ${a.labels.join(' | ')}${f} }`)
    }
    if (d.defaultArm !== null) {
      const rest = this.isEnumLike(dt) ? `Exclude<${discTs}, ${listed.join(' | ')}>` : discTs
      const f = d.defaultArm.kind === 'void' ? '' : `; ${d.defaultArm.name}: ${this.decl(d.defaultArm, d.name).ts}`
      variants.push(`{ ${disc.name}: ${rest}${f} }`)
    }
    this.emit(`export type ${d.name} =`, ...variants.map((v) => `  | ${v}`))
    this.emit(`export const ${d.name}: Codec<${d.name}> = {`, '  encode(w, v) {', `    ${this.write(dt, `v.${disc.name}`)}`, `    switch (v.${disc.name}) {`)
    for (const a of arms) {
      for (const l of a.labels) this.emit(`      case ${l}:`)
      const f = armField(a.decl)
      if (f !== null && a.decl.kind !== 'void') {
        const { ts, enc } = this.decl(a.decl, d.name)
        this.emit(`        ${enc(`(v as { ${f}: ${ts} }).${f}`)}`)
      }
      this.emit('        break')
    }
    this.emit('      default:')
    if (d.defaultArm !== null && d.defaultArm.kind !== 'void') {
      const f = d.defaultArm.name
      const { ts, enc } = this.decl(d.defaultArm, d.name)
      this.emit(`        ${enc(`(v as { ${f}: ${ts} }).${f}`)}`)
    }
    this.emit('        break', '    }', '  },', '  decode(r) {', `    const d = ${this.read(dt)}`, '    switch (d) {')
    for (const a of arms) {
      for (const l of a.labels) this.emit(`      case ${l}:`)
      const f = armField(a.decl)
      this.emit(f === null || a.decl.kind === 'void' ? `        return { ${disc.name}: d }` : `        return { ${disc.name}: d, ${f}: ${this.decl(a.decl, d.name).dec} }`)
    }
    this.emit('      default:')
    if (d.defaultArm === null) {
      this.emit(`        throw new XdrDecodeError('XDR_BAD_DISCRIMINANT', \`${d.name}: \${String(d)}\`)`)
    } else if (d.defaultArm.kind === 'void') {
      this.emit(`        return { ${disc.name}: d }`)
    } else {
      this.emit(`        return { ${disc.name}: d, ${d.defaultArm.name}: ${this.decl(d.defaultArm, d.name).dec} }`)
    }
    this.emit('    }', '  },', '}', '')
  }

  private isEnumLike(t: TypeSpec): boolean {
    if (t.kind !== 'named') return false
    const d = this.byName.get(t.name)
    if (d?.kind === 'enum') return true
    return d?.kind === 'typedef' && d.decl.kind === 'plain' && this.isEnumLike(d.decl.type)
  }

  private program(d: Def<'program'>): void {
    const codec = (t: TypeSpec | null): string => (t === null ? 'xdr_void' : this.codecOf(t))
    this.doc(d.source)
    this.emit(`export const ${d.name} = {`, `  name: '${d.name}',`, `  prog: ${d.number},`, '  versions: {')
    for (const v of d.versions) {
      this.emit(`    ${v.name}: {`, `      name: '${v.name}',`, `      vers: ${v.number},`, '      procs: {')
      for (const p of v.procedures) {
        this.emit(`        ${p.name}: { name: '${p.name}', proc: ${p.number}, args: ${codec(p.arg)}, res: ${codec(p.result)} },`)
      }
      this.emit('      },', '    },')
    }
    this.emit('  },', '} as const satisfies ProgramDef', '')
  }
}
