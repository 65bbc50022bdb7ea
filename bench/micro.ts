/* The micro benchmarks of the hot paths: codecs (xdr.bench.ts) and dispatch (dispatch.bench.ts). */
import { dispatchBenches } from './dispatch.bench.ts'
import type { Result } from './harness.ts'
import { xdrBenches } from './xdr.bench.ts'

export async function microBenches(): Promise<Result[]> {
  return [...xdrBenches(), ...(await dispatchBenches())]
}
