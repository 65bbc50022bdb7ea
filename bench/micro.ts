/* The micro benchmarks of the hot paths: codecs (xdr.bench.ts), dispatch (dispatch.bench.ts) and the engine's read paths (engine-dispatch.bench.ts). */
import { dispatchBenches } from './dispatch.bench.ts'
import { engineDispatchBenches } from './engine-dispatch.bench.ts'
import type { Result } from './harness.ts'
import { xdrBenches } from './xdr.bench.ts'

export async function microBenches(): Promise<Result[]> {
  return [...xdrBenches(), ...(await dispatchBenches()), ...(await engineDispatchBenches())]
}
