import type { Codec } from './codec.ts'
import { XdrDecodeError } from './errors.ts'
import { XdrReader } from './reader.ts'

/*
 * A list whose items are already in XDR (RFC 4506 §4.19: each item after its
 * TRUE "value follows"; the final FALSE is the list codec's). A server that
 * answers with hundreds of items a reply (READDIRPLUS: an entry, its fattr3
 * and handle) writes them straight into bytes instead of building an object
 * per item and per field for the codec to walk: the objects were most of
 * the reply's garbage.
 *
 * The value is still the list its type says: reading it in any way decodes
 * the items (once) into the array behind it, so a reader never sees a list
 * other than the one on the wire. Changing it drops the bytes; the codec
 * then encodes the items as it would any list.
 */

const BYTES = Symbol('xdr.encodedList')

interface Tagged {
  readonly [BYTES]?: Buffer
}

/** The bytes of a list made by encodedList, while unchanged; undefined for any other list. */
export function encodedBytesOf(list: readonly unknown[]): Buffer | undefined {
  return (list as Tagged)[BYTES]
}

/** The list whose items are encoded in `bytes` (each TRUE, then the item; no final FALSE), by `item`. */
export function encodedList<T>(item: Codec<T>, bytes: Buffer): T[] {
  let encoded: Buffer | null = bytes
  let decoded = false
  const fill = (target: T[]): void => {
    if (decoded) return
    decoded = true
    const r = new XdrReader(bytes)
    while (r.remaining > 0) {
      if (!r.bool()) throw new XdrDecodeError('XDR_BAD_BOOL', 'encoded list: FALSE before the end')
      target.push(item.decode(r))
    }
  }
  const changed = (target: T[]): void => {
    fill(target)
    encoded = null
  }
  return new Proxy<T[]>([], {
    get(target, key, receiver) {
      if (key === BYTES) return encoded ?? undefined
      fill(target)
      return Reflect.get(target, key, receiver) as unknown
    },
    has(target, key) {
      fill(target)
      return Reflect.has(target, key)
    },
    ownKeys(target) {
      fill(target)
      return Reflect.ownKeys(target)
    },
    getOwnPropertyDescriptor(target, key) {
      fill(target)
      return Reflect.getOwnPropertyDescriptor(target, key)
    },
    set(target, key, value, receiver) {
      changed(target)
      return Reflect.set(target, key, value, receiver)
    },
    defineProperty(target, key, desc) {
      changed(target)
      return Reflect.defineProperty(target, key, desc)
    },
    deleteProperty(target, key) {
      changed(target)
      return Reflect.deleteProperty(target, key)
    },
  })
}
