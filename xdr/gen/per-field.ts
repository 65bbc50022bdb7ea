import { writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { generate } from './main.ts'

/*
 * A spec's codecs as they are without FLAT_ENCODERS (every struct encoded a
 * field at a time), for a test to compare the flat encoders' bytes with and
 * a bench to time them against, in one process. Written into `dir` (the
 * caller's, to remove) with its runtime imports pointed at xdr/runtime; run
 * under tsx (it is TypeScript).
 */
export async function perFieldModule<M>(spec: string, dir: string): Promise<M> {
  const runtime = join(dirname(fileURLToPath(import.meta.url)), '..', 'runtime')
  const text = generate(spec, new Set()).replaceAll("'../runtime/", `'${pathToFileURL(runtime).href}/`)
  const file = join(dir, `${spec}.ts`)
  writeFileSync(file, text)
  return (await import(pathToFileURL(file).href)) as M
}
