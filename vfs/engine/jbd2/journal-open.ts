/*
 * The journal as both recovery and the writer first see it: where its blocks are, its superblock
 * (decoded, validated against the file system, raw bytes kept so a rewrite preserves every field
 * we do not own), and the log layout that follows from its features.
 */
import type { BlockDevice } from '../blockdev/block-device.ts'
import { locateJournal } from './journal-map.ts'
import type { JournalLocation } from './journal-map.ts'
import { logFormat } from './log-blocks.ts'
import type { LogFormat } from './log-blocks.ts'
import {
  decodeJournalSuperblock, encodeJournalSuperblock, JOURNAL_SUPERBLOCK_SIZE, setJournalSuperblockChecksum, validateJournalSuperblock,
} from './superblock.ts'
import type { JournalSuperblock } from './superblock.ts'

export interface OpenedJournal extends JournalLocation {
  jsb: JournalSuperblock
  /** The journal's first block as read. */
  rawJsb: Buffer
  fmt: LogFormat
}

export async function openJournal(dev: BlockDevice): Promise<OpenedJournal> {
  const loc = await locateJournal(dev)
  const bs = loc.map.blockSize
  const rawJsb = await dev.read(loc.map.phys(0) * bs, bs)
  const jsb = decodeJournalSuperblock(rawJsb)
  validateJournalSuperblock(jsb, rawJsb, bs, loc.map.blocks)
  return { ...loc, jsb, rawJsb, fmt: logFormat(jsb) }
}

/** Write the journal superblock (checksum recomputed), keeping the rest of its block as read. */
export async function writeJournalSuperblock(dev: BlockDevice, j: OpenedJournal, jsb: JournalSuperblock): Promise<void> {
  const raw = encodeJournalSuperblock(jsb, j.rawJsb)
  setJournalSuperblockChecksum(raw)
  raw.copy(j.rawJsb, 0, 0, JOURNAL_SUPERBLOCK_SIZE)
  j.jsb = decodeJournalSuperblock(j.rawJsb)
  await dev.write(j.map.phys(0) * j.map.blockSize, raw)
}
