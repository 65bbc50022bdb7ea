/*
 * Small blocks in the database, the rest in the object store (issue 17 §1:
 * "a small file's data may live in the database instead"). A file of a few
 * bytes in S3 costs a PUT and later a GET per block, each a round trip to
 * the gateway and an object the bucket must index; the same bytes in a row
 * of tsnfs_block cost one INSERT on the database the metadata already talks
 * to, and a read of them one SELECT.
 *
 * Where a block lives follows from its key alone: the key carries the
 * block's length (data/keys.ts), and every block of at most `maxSmall`
 * bytes goes to `small`, anything else (longer blocks, keys outside the
 * block layout) to `large`. No lookup, no second try, and no record to keep
 * consistent: a get asks exactly one store. The threshold is a setting of
 * the file system (`tsnfs cluster init --small-blocks`, tsnfs_setting), not
 * of a server, because every server must route a key the same way.
 */
import { parseBlockKey } from './data/keys.ts'
import type { ObjectInfo, ObjectStore } from './object-store.ts'

/** Largest threshold: a 1 MiB block is no longer small, and rows that big strain the database. */
export const MAX_SMALL_BLOCK = 1024 * 1024

export class TieredStore implements ObjectStore {
  readonly #small: ObjectStore
  readonly #large: ObjectStore
  readonly #maxSmall: number

  constructor(opts: { small: ObjectStore; large: ObjectStore; maxSmall: number }) {
    if (!Number.isInteger(opts.maxSmall) || opts.maxSmall < 1 || opts.maxSmall > MAX_SMALL_BLOCK) {
      throw new RangeError(`small-block threshold ${opts.maxSmall} is not 1..${MAX_SMALL_BLOCK} bytes`)
    }
    this.#small = opts.small
    this.#large = opts.large
    this.#maxSmall = opts.maxSmall
  }

  /** The store `key` lives in. */
  storeOf(key: string): ObjectStore {
    const name = parseBlockKey(key)
    return name !== null && name.len <= this.#maxSmall ? this.#small : this.#large
  }

  put(key: string, data: Buffer): Promise<void> {
    return this.storeOf(key).put(key, data)
  }

  get(key: string, offset: number, length: number): Promise<Buffer> {
    return this.storeOf(key).get(key, offset, length)
  }

  async delete(keys: readonly string[]): Promise<void> {
    const small: string[] = []
    const large: string[] = []
    for (const k of keys) (this.storeOf(k) === this.#small ? small : large).push(k)
    await Promise.all([small.length > 0 ? this.#small.delete(small) : undefined, large.length > 0 ? this.#large.delete(large) : undefined])
  }

  /** Both stores' listings merged in key order (each lists in byte order), as one store would list them. */
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const a = this.#small.list(prefix)[Symbol.asyncIterator]()
    const b = this.#large.list(prefix)[Symbol.asyncIterator]()
    const next = async (it: AsyncIterator<ObjectInfo>): Promise<ObjectInfo | null> => {
      const r = await it.next()
      return r.done === true ? null : r.value
    }
    try {
      let x = await next(a)
      let y = await next(b)
      while (x !== null || y !== null) {
        // Byte order, as S3 and the block table list (not the locale's order).
        if (y === null || (x !== null && Buffer.compare(Buffer.from(x.key), Buffer.from(y.key)) <= 0)) {
          const v = x as ObjectInfo
          x = await next(a)
          yield v
        } else {
          const v = y
          y = await next(b)
          yield v
        }
      }
    } finally {
      // A caller that stops early (fsck's --max-slices, gc's dry run) ends both listings' paging.
      await Promise.all([a.return?.(), b.return?.()])
    }
  }

  async init(): Promise<void> {
    await this.#small.init()
    await this.#large.init()
  }

  describe(): string {
    return `${this.#large.describe()}, blocks of at most ${this.#maxSmall} bytes in ${this.#small.describe()}`
  }

  async close(): Promise<void> {
    await Promise.all([this.#small.close(), this.#large.close()])
  }
}
