/*
 * The port mappings a portmapper answers for (RFC 1833 §3). One registry per
 * server; tsnfs registers its own programs on both transports at listen time.
 */
import type { mapping } from '../../xdr/generated/portmap.ts'
import { IPPROTO_TCP, IPPROTO_UDP } from '../../xdr/generated/portmap.ts'

export class PortRegistry {
  private readonly maps: mapping[] = []

  /** RFC 1833 §3.2: SET fails if (prog, vers, prot) is already mapped. */
  set(m: mapping): boolean {
    if (m.prot !== IPPROTO_TCP && m.prot !== IPPROTO_UDP) return false
    if (this.maps.some((x) => x.prog === m.prog && x.vers === m.vers && x.prot === m.prot)) return false
    this.maps.push({ prog: m.prog, vers: m.vers, prot: m.prot, port: m.port })
    return true
  }

  /** RFC 1833 §3.2: UNSET ignores prot and port and removes every mapping of (prog, vers). */
  unset(prog: number, vers: number): boolean {
    let removed = false
    for (let i = this.maps.length - 1; i >= 0; i--) {
      const m = this.maps[i]
      if (m !== undefined && m.prog === prog && m.vers === vers) {
        this.maps.splice(i, 1)
        removed = true
      }
    }
    return removed
  }

  /** RFC 1833 §3.2: port 0 when not registered; the port field of the query is ignored. */
  getport(prog: number, vers: number, prot: number): number {
    return this.maps.find((m) => m.prog === prog && m.vers === vers && m.prot === prot)?.port ?? 0
  }

  list(): mapping[] {
    return this.maps.map((m) => ({ ...m }))
  }

  /** Register every version of every program on TCP and UDP at `port`. */
  registerAll(programs: Iterable<{ prog: number; versions: ReadonlyMap<number, unknown> }>, port: number): void {
    for (const p of programs) {
      for (const vers of p.versions.keys()) {
        this.unset(p.prog, vers)
        this.set({ prog: p.prog, vers, prot: IPPROTO_TCP, port })
        this.set({ prog: p.prog, vers, prot: IPPROTO_UDP, port })
      }
    }
  }
}
