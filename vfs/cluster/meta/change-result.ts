/* What a changing transaction hands back besides its reply: for the cache and the delfile queue. */
import type { EntryEdit } from './cache.ts'
import type { Node } from './node.ts'

export interface Changed<T> {
  value: T
  /** Inodes the transaction changed (announced to the other servers, dropped here). */
  touched: bigint[]
  /** Nodes as the transaction left them (cached here if nothing raced). */
  nodes: Node[]
  /** A regular file whose last link went: its chunks are released after the commit. */
  freed: bigint | null
  /** Directory entries the transaction made (inode) or removed (null), applied to the cached names. */
  edits?: EntryEdit[]
  /** Node rows the transaction deleted (an empty directory removed or replaced): COUNTER.usedInodes. */
  dropped?: number
}
