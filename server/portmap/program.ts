/*
 * PORTMAP v2 (RFC 1833 §3), built in so clients that ask a portmapper
 * (Windows mount.exe, OpenBSD, showmount, mount.nfs without port=) find us
 * on the server's own port, and on 111 when the operator asks for it.
 * rpcbind v3/v4 callers get PROG_MISMATCH(2, 2) from the dispatcher and
 * fall back to v2 (specs/README.md §2).
 */
import { PMAP_PROG } from '../../xdr/generated/portmap.ts'
import { defineProgram } from '../rpc/program.ts'
import type { CallContext, RpcProgram } from '../rpc/program.ts'
import type { PortRegistry } from './registry.ts'

/** SET and UNSET change the registry only for callers on this host (rpcbind allows only local registrations). */
function isLocal(call: CallContext): boolean {
  const a = call.peer.address
  return a === '::1' || a.startsWith('127.') || a.startsWith('::ffff:127.')
}

export function createPortmapProgram(registry: PortRegistry): RpcProgram {
  return defineProgram(PMAP_PROG, 'PMAP_VERS', {
    PMAPPROC_NULL: () => undefined,
    PMAPPROC_SET: (m, call) => isLocal(call) && registry.set(m),
    PMAPPROC_UNSET: (m, call) => isLocal(call) && registry.unset(m.prog, m.vers),
    PMAPPROC_GETPORT: (m) => registry.getport(m.prog, m.vers, m.prot),
    PMAPPROC_DUMP: () => registry.list().map((map) => ({ map })),
  })
}
