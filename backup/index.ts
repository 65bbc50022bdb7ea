/*
 * The backup format (issue 16): pax tar streams of a Vfs tree, dump-style levels, restore, verify.
 * Callers (the NDMP data service, the DMA, the CLI) use the BackupFormat object; the level store
 * keeps dumpdates and listings in a state directory.
 */
import type { BackupFormat } from './types.ts'
import { writeBackup } from './backup.ts'
import type { ListingLookup } from './backup.ts'
import { readBackup } from './restore.ts'
import type { LevelStore } from './levels.ts'

export { LevelStore } from './levels.ts'
export { verifyBackup } from './verify.ts'
export type { VerifyMismatch, VerifySummary } from './verify.ts'
export type { ListingLookup } from './backup.ts'

/**
 * A BackupFormat. With a level store, an incremental finds its base's listing there (renames and
 * new names are then seen); without one, only times decide what an incremental copies.
 */
export function createBackupFormat(opts: { levels?: LevelStore | null; listings?: ListingLookup } = {}): BackupFormat {
  const levels = opts.levels ?? null
  const lookup: ListingLookup | null = opts.listings ?? (levels === null ? null : (id) => levels.listing(id))
  return {
    writeBackup: (tree, sink, req) => writeBackup(tree, sink, req, lookup),
    readBackup: (source, sourceName, target, req) => readBackup(source, sourceName, target, req),
  }
}

/** The format without a level store. */
export const backupFormat: BackupFormat = createBackupFormat()
