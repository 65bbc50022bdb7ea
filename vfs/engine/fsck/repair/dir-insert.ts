/*
 * Adding one entry to a linear (unindexed) directory from fsck: the first
 * leaf with room takes it (the engine's insertInBlock), and the leaf's
 * checksum is recomputed. An indexed directory is not written here: an entry
 * must go to the leaf its name hashes to, which is the engine's htree code's
 * business, not fsck's.
 */
import { insertInBlock, setLeafCsum } from '../../dir/dir-block.ts'
import { dirFsOf } from '../../dir/dir-file.ts'
import { INODE_FLAGS } from '../../format/inode.ts'
import type { MetaTxn } from '../../txn/txn.ts'
import type { DirInfo, FsckContext } from '../context.ts'

/** What addEntry's answer says when every block is full (and only then): the caller may grow the directory and try again. */
export const NO_ROOM = 'has no room for'

/** Insert name → child into directory ino; why not, as a string, when it cannot. */
export async function addEntry(ctx: FsckContext, h: MetaTxn, ino: number, dir: DirInfo, name: string, child: number, fileType: number): Promise<true | string> {
  if ((dir.flags & INODE_FLAGS.INDEX) !== 0) return `directory ${ino} is indexed (htree)`
  const fs = dirFsOf(ctx.img.sb)
  const bs = ctx.img.blockSize
  const nblocks = Math.floor(dir.size / bs)
  for (const [l, p, n] of dir.extents) {
    for (let i = 0; i < n && l + i < nblocks; i++) {
      const buf = await h.get(p + i)
      let fits: boolean
      try {
        fits = insertInBlock(buf, fs, { inode: child, fileType, name: Buffer.from(name) })
      } catch (err) {
        return `directory ${ino} block ${p + i}: ${err instanceof Error ? err.message : String(err)}`
      }
      if (!fits) continue
      setLeafCsum(buf, fs, ino, dir.generation)
      h.dirty(p + i)
      return true
    }
  }
  return `directory ${ino} ${NO_ROOM} '${name}'`
}
