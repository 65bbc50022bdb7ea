/*
 * Reaching a client's own lock manager: its portmapper (at the address its
 * request came from) says where its NLM listens; the call goes over the
 * transport the client used (server/callback does the RPC).
 */
import { NLM_PROG } from '../../xdr/generated/nlm.ts'
import { callRegistered, sendOneWayRegistered } from '../callback/portmap.ts'
import type { PeerCaller } from './types.ts'

export function portmappedCaller(peerPortmapPort: number, timeoutMs = 2000): PeerCaller {
  const target = (address: string, transport: 'udp' | 'tcp', vers: number, proc: number) => ({
    host: address,
    pmapPort: peerPortmapPort,
    transport,
    prog: NLM_PROG.prog,
    vers,
    proc,
  })
  return {
    call: (to, proc, args, argv, res) => callRegistered(target(to.address, to.transport, to.vers, proc), args, argv, res, { timeoutMs }),
    send: (to, proc, args, argv) => sendOneWayRegistered(target(to.address, to.transport, to.vers, proc), args, argv, { timeoutMs }),
  }
}
