/*
 * A decoded change with every buffer copied out of the record it came in:
 * the RPC server reuses its record buffers once a call is answered (the
 * decoders hand out views), and a ChangeTarget may keep names (its id map)
 * or data beyond the call.
 */
import type { Change, NewObject } from '../../vfs/replica/change.ts'

const copy = (b: Buffer): Buffer => Buffer.from(b)
const own = (o: NewObject): NewObject => ({ ...o, name: copy(o.name) })

export function ownChange(c: Change): Change {
  switch (c.op) {
    case 'create':
      return { ...c, obj: own(c.obj), exclusive: c.exclusive === null ? null : copy(c.exclusive) }
    case 'mkdir':
    case 'mknod':
      return { ...c, obj: own(c.obj) }
    case 'symlink':
      return { ...c, obj: own(c.obj), target: copy(c.target) }
    case 'write':
      return { ...c, data: c.data === null ? null : copy(c.data) }
    case 'setattr':
      return c
    case 'remove':
    case 'rmdir':
    case 'link':
      return { ...c, name: copy(c.name) }
    case 'rename':
      return { ...c, fromName: copy(c.fromName), toName: copy(c.toName) }
  }
}
