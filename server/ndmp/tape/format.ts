/*
 * The virtual tape's on-disk format lives in common/tape-format.ts: the NDMP tape service writes
 * it, and the backup manager (dma/, which may not import server/) rereads its pool's tapes with
 * it to verify a backup. This file keeps the tape service's imports where they were.
 */
export * from '../../../common/tape-format.ts'
