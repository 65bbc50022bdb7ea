/*
 * PORTMAP v2 (RFC 1833 §3) for the lock service's own programs only: a
 * server that looks for our NLM or NSM at (our address, P) finds them. As
 * several test "hosts" share one machine (127.0.0.2, 127.0.0.3, …), each
 * answers on its own address; SET and UNSET are not served (nobody else
 * registers with us).
 */
import { IPPROTO_TCP, IPPROTO_UDP, PMAP_PROG } from '../../xdr/generated/portmap.ts'
import type { mapping } from '../../xdr/generated/portmap.ts'
import { serve } from './rpc-service.ts'
import type { ServedProgram } from './rpc-service.ts'

const V2 = PMAP_PROG.versions.PMAP_VERS

/** Every (prog, vers) on TCP and UDP at port. */
export function mappingsAt(programs: readonly (readonly [number, number])[], port: number): mapping[] {
  return programs.flatMap(([prog, vers]) => [
    { prog, vers, prot: IPPROTO_TCP, port },
    { prog, vers, prot: IPPROTO_UDP, port },
  ])
}

export function portmapProgram(mappings: () => readonly mapping[]): ServedProgram {
  return {
    prog: PMAP_PROG.prog,
    vers: V2.vers,
    procs: [
      serve(V2.procs.PMAPPROC_NULL, () => undefined),
      // RFC 1833 §3.2: 0 when not registered; the port in the query is ignored.
      serve(V2.procs.PMAPPROC_GETPORT, m => mappings().find(x => x.prog === m.prog && x.vers === m.vers && x.prot === m.prot)?.port ?? 0),
      serve(V2.procs.PMAPPROC_DUMP, () => mappings().map(map => ({ map: { ...map } }))),
    ],
  }
}
