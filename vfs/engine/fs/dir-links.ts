/* Directory entry file types and link counts, as ext4 keeps them. */
import type { FileType } from '../../types.ts'
import { FT } from '../format/dirent.ts'
import type { Inode } from '../format/inode.ts'

/** EXT4_LINK_MAX: links to a file; a directory past it counts 1 ("many", dir_nlink). */
export const LINK_MAX = 65000

export const FT_OF: Record<FileType, number> = {
  file: FT.REG_FILE, dir: FT.DIR, symlink: FT.SYMLINK, block: FT.BLKDEV, char: FT.CHRDEV, socket: FT.SOCK, fifo: FT.FIFO,
}

/** ext4's dir_nlink: a directory with 65000 links or more counts 1, meaning "many". */
export function incDirLinks(dir: Inode): void {
  if (dir.linksCount === 1) return
  dir.linksCount = dir.linksCount + 1 >= LINK_MAX ? 1 : dir.linksCount + 1
}

export function decDirLinks(dir: Inode): void {
  if (dir.linksCount > 2) dir.linksCount--
}
