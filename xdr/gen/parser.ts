import type { Declaration, Definition, DefinitionBody, Prim, TypeSpec, UnionArm, Value, VersionDef } from './ast.ts'
import { type Token, tokenize, XdrSyntaxError } from './lexer.ts'

/** Parses one .x file into definitions, keeping each definition's source text for the emitted JSDoc. */
export function parse(text: string, file: string): Definition[] {
  return new Parser(tokenize(text, file), text, file).specification()
}

class Parser {
  private i = 0
  private readonly tokens: Token[]
  private readonly text: string
  private readonly file: string

  constructor(tokens: Token[], text: string, file: string) {
    this.tokens = tokens
    this.text = text
    this.file = file
  }

  private peek(k = 0): Token {
    const t = this.tokens[Math.min(this.i + k, this.tokens.length - 1)]
    if (t === undefined) throw new Error('no tokens')
    return t
  }

  private next(): Token {
    const t = this.peek()
    this.i++
    return t
  }

  private fail(t: Token, message: string): never {
    throw new XdrSyntaxError(this.file, t.line, t.col, message)
  }

  private expect(text: string): Token {
    const t = this.next()
    if (t.text !== text) this.fail(t, `expected '${text}', found '${t.text || 'end of file'}'`)
    return t
  }

  private accept(text: string): boolean {
    if (this.peek().text === text) {
      this.i++
      return true
    }
    return false
  }

  private ident(): string {
    const t = this.next()
    if (t.kind !== 'ident') this.fail(t, `expected a name, found '${t.text || 'end of file'}'`)
    return t.text
  }

  private number(): number {
    const t = this.next()
    if (t.kind !== 'number') this.fail(t, `expected a number, found '${t.text}'`)
    const v = Number(t.text)
    if (!Number.isSafeInteger(v)) this.fail(t, `bad number '${t.text}'`)
    return v
  }

  private value(): Value {
    const t = this.peek()
    if (t.kind === 'number') return this.number()
    return this.ident()
  }

  specification(): Definition[] {
    const defs: Definition[] = []
    while (this.peek().kind !== 'eof') defs.push(this.definition())
    return defs
  }

  private definition(): Definition {
    const start = this.peek().offset
    const t = this.next()
    let def: DefinitionBody
    switch (t.text) {
      case 'const': {
        const name = this.ident()
        this.expect('=')
        def = { kind: 'const', name, value: this.number() }
        break
      }
      case 'typedef': {
        const decl = this.declaration()
        if (decl.kind === 'void') this.fail(t, 'typedef of void')
        def = { kind: 'typedef', decl }
        break
      }
      case 'enum':
        def = { kind: 'enum', name: this.ident(), members: this.enumBody() }
        break
      case 'struct': {
        const name = this.ident()
        def = { kind: 'struct', name, fields: this.structBody() }
        break
      }
      case 'union':
        def = this.unionDef()
        break
      case 'program':
        def = this.program()
        break
      default:
        this.fail(t, `expected a definition, found '${t.text}'`)
    }
    this.expect(';')
    const end = this.tokens[this.i - 1]?.offset ?? start
    return { ...def, source: this.text.slice(start, end + 1) }
  }

  private enumBody(): { name: string; value: Value }[] {
    this.expect('{')
    const members: { name: string; value: Value }[] = []
    do {
      const name = this.ident()
      this.expect('=')
      members.push({ name, value: this.value() })
    } while (this.accept(','))
    this.expect('}')
    return members
  }

  private structBody(): (Declaration & { name: string })[] {
    this.expect('{')
    const fields: (Declaration & { name: string })[] = []
    while (!this.accept('}')) {
      const d = this.declaration()
      if (d.kind === 'void') this.fail(this.peek(), 'void struct member')
      fields.push(d)
      this.expect(';')
    }
    return fields
  }

  private unionDef(): DefinitionBody & { kind: 'union' } {
    const name = this.ident()
    this.expect('switch')
    this.expect('(')
    const type = this.typeSpec()
    const discName = this.ident()
    this.expect(')')
    this.expect('{')
    const arms: UnionArm[] = []
    let defaultArm: Declaration | null = null
    let cases: Value[] = []
    while (!this.accept('}')) {
      if (this.accept('case')) {
        cases.push(this.value())
        this.expect(':')
        if (this.peek().text === 'case' || this.peek().text === 'default') continue
      } else {
        const t = this.expect('default')
        if (defaultArm !== null) this.fail(t, 'two default arms')
        this.expect(':')
        defaultArm = this.declaration()
        this.expect(';')
        continue
      }
      arms.push({ cases, decl: this.declaration() })
      cases = []
      this.expect(';')
    }
    return { kind: 'union', name, discriminant: { name: discName, type }, arms, defaultArm }
  }

  private typeSpec(): TypeSpec {
    const t = this.next()
    switch (t.text) {
      case 'unsigned': {
        const n = this.peek().text
        if (n === 'int' || n === 'long') this.i++
        else if (n === 'hyper') {
          this.i++
          return prim('uhyper')
        }
        return prim('uint')
      }
      case 'int':
      case 'long':
        return prim('int')
      case 'hyper':
        return prim('hyper')
      case 'bool':
        return prim('bool')
      case 'float':
        return prim('float')
      case 'double':
        return prim('double')
      case 'struct':
      case 'union':
      case 'enum':
        // `struct name` as a type reference (C style, as in mount3.x); inline bodies are not supported.
        return { kind: 'named', name: this.ident() }
      default:
        if (t.kind !== 'ident') this.fail(t, `expected a type, found '${t.text}'`)
        return { kind: 'named', name: t.text }
    }
  }

  private declaration(): Declaration {
    if (this.accept('void')) return { kind: 'void' }
    if (this.peek().text === 'opaque' || this.peek().text === 'string') {
      const kw = this.next().text
      const name = this.ident()
      if (kw === 'opaque' && this.accept('[')) {
        const size = this.value()
        this.expect(']')
        return { kind: 'fixedOpaque', name, size }
      }
      this.expect('<')
      const max = this.peek().text === '>' ? null : this.value()
      this.expect('>')
      return kw === 'opaque' ? { kind: 'varOpaque', name, max } : { kind: 'string', name, max }
    }
    const type = this.typeSpec()
    if (this.accept('*')) return { kind: 'optional', name: this.ident(), type }
    const name = this.ident()
    if (this.accept('[')) {
      const size = this.value()
      this.expect(']')
      return { kind: 'fixedArray', name, type, size }
    }
    if (this.accept('<')) {
      const max = this.peek().text === '>' ? null : this.value()
      this.expect('>')
      return { kind: 'varArray', name, type, max }
    }
    return { kind: 'plain', name, type }
  }

  private program(): DefinitionBody & { kind: 'program' } {
    const name = this.ident()
    this.expect('{')
    const versions: VersionDef[] = []
    while (!this.accept('}')) {
      this.expect('version')
      const vname = this.ident()
      this.expect('{')
      const procedures: VersionDef['procedures'] = []
      while (!this.accept('}')) {
        const result = this.accept('void') ? null : this.typeSpec()
        const pname = this.ident()
        this.expect('(')
        const arg = this.accept('void') ? null : this.typeSpec()
        this.expect(')')
        this.expect('=')
        procedures.push({ name: pname, number: this.number(), result, arg })
        this.expect(';')
      }
      this.expect('=')
      versions.push({ name: vname, number: this.number(), procedures })
      this.expect(';')
    }
    this.expect('=')
    return { kind: 'program', name, number: this.number(), versions }
  }
}

function prim(p: Prim): TypeSpec {
  return { kind: 'prim', prim: p }
}
