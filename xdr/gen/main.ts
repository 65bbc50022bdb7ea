import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { emitModule } from './emit.ts'
import { parse } from './parser.ts'

/*
 * npm run gen        regenerate xdr/generated/*.ts from xdr/spec/*.x
 * npm run gen:check  fail if the committed output differs from what the specs generate
 */

export const SPECS = ['portmap', 'mount', 'nfs3', 'nlm', 'nsm', 'replication', 'ndmp3', 'ndmp4'] as const

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

/** `flat`: FLAT_ENCODERS' structs unless given (a test asks for none, to compare the per-field encoders). */
export function generate(spec: string, flat?: ReadonlySet<string>): string {
  const specPath = `xdr/spec/${spec}.x`
  return emitModule(parse(readFileSync(join(root, specPath), 'utf8'), specPath), specPath, flat)
}

function main(): void {
  const check = process.argv.includes('--check')
  const drifted: string[] = []
  for (const spec of SPECS) {
    const out = join(root, 'xdr', 'generated', `${spec}.ts`)
    const text = generate(spec)
    if (check) {
      let current = ''
      try {
        current = readFileSync(out, 'utf8')
      } catch {
        /* missing counts as drift */
      }
      if (current !== text) drifted.push(`xdr/generated/${spec}.ts`)
    } else {
      writeFileSync(out, text)
      console.log(`wrote xdr/generated/${spec}.ts`)
    }
  }
  if (drifted.length > 0) {
    console.error(`generated code drifted from xdr/spec (run npm run gen): ${drifted.join(', ')}`)
    process.exit(1)
  }
  if (check) console.log('xdr/generated is up to date')
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) main()
