/* Short spellings for the lock table's tests. */
import { LOCK_EOF, type HeldLock, type LockOwner, type LockRequest } from '../../locks/types.ts'

/** An owner: host `client`, process `svid`; oh derived from both unless given. */
export function owner(client: string, svid = 1, oh = `${client}#${svid}`): LockOwner {
  return { client, svid, oh: Buffer.from(oh) }
}

/** A request; exclusive unless told, `end` LOCK_EOF for "to end of file". */
export function req(file: string, o: LockOwner, start: bigint | number, end: bigint | number, exclusive = true): LockRequest {
  return { file, owner: o, start: BigInt(start), end: BigInt(end), exclusive }
}

/** A held lock as one readable token: "hostA/1 X 0-10", "EOF" for LOCK_EOF. */
export function span(l: { readonly owner: LockOwner; readonly start: bigint; readonly end: bigint; readonly exclusive: boolean }): string {
  const end = l.end === LOCK_EOF ? 'EOF' : String(l.end)
  return `${l.owner.client}/${l.owner.svid} ${l.exclusive ? 'X' : 'S'} ${String(l.start)}-${end}`
}

/** Held locks as sorted tokens, for whole-state assertions. */
export function spans(locks: readonly HeldLock[]): string[] {
  return locks.map(span).sort()
}
