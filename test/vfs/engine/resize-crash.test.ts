/*
 * A power cut during a grow (vfs/engine/resize) leaves the old file system or the new one: every
 * flush boundary of a recorded grow, with none, each prefix and all of the writes in flight, is
 * recovered as a mount would (journal replay) and must then be e2fsck -fn clean with the old or
 * the new block count. The grow crosses into a reserved GDT block, so the resize inode's rebuild
 * is among the journaled writes.
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { RecordingDevice } from '../../../vfs/engine/blockdev/recording-device.ts'
import type { CrashState } from '../../../vfs/engine/blockdev/recording-device.ts'
import { needsRecovery } from '../../../vfs/engine/jbd2/needs-recovery.ts'
import { recover } from '../../../vfs/engine/jbd2/recovery.ts'
import { makeFileSystem } from '../../../vfs/engine/mkfs/mkfs.ts'
import { growFileSystem } from '../../../vfs/engine/resize/grow-fs.ts'
import { scratch } from './format-helpers.ts'
import { e2fsck, superblockOf } from './mkfs-helpers.ts'

const MiB = 2 ** 20
const CHUNK = MiB
const ZEROS = Buffer.alloc(CHUNK)

/** The chunks of `dev` holding a non-zero byte. */
async function nonZeroChunks(dev: MemoryDevice): Promise<Set<number>> {
  const out = new Set<number>()
  for (let at = 0; at < dev.size; at += CHUNK) {
    const chunk = await dev.read(at, Math.min(CHUNK, dev.size - at))
    if (!chunk.equals(ZEROS.subarray(0, chunk.length))) out.add(at)
  }
  return out
}

/** Lays `chunks` of `dev` over `file` (which holds zeros everywhere else). */
async function toFile(dev: MemoryDevice, file: string, chunks: ReadonlySet<number>): Promise<void> {
  const fd = fs.openSync(file, 'r+')
  try {
    for (const at of chunks) {
      const chunk = await dev.read(at, Math.min(CHUNK, dev.size - at))
      fs.writeSync(fd, chunk, 0, chunk.length, at)
    }
  } finally {
    fs.closeSync(fd)
  }
}

t.setTimeout(120_000)

t.test('every crash state of a grow into a reserved GDT block is the old or the new file system', async (t) => {
  // 1 KiB blocks, 16 groups of 8192 (one descriptor block holds 16, the last group short) grown to 18: a second descriptor block.
  const oldSize = 121 * MiB
  const newSize = 137 * MiB
  const small = new MemoryDevice(oldSize)
  await makeFileSystem(small, { zeroed: true, blockSize: 1024 })
  const base = new MemoryDevice(newSize)
  for (let at = 0; at < oldSize; at += CHUNK) await base.write(at, await small.read(at, CHUNK))
  const rec = new RecordingDevice(base.clone())
  const r = await growFileSystem(rec)
  t.match(r, { oldGroups: 16, newGroups: 18, gdtBlocksAdded: 1, grown: true })
  const dir = scratch(t, 'resize-crash')
  const file = path.join(dir, 'state.img')
  fs.writeFileSync(file, '')
  fs.truncateSync(file, newSize)
  // Only chunks the base holds or a recorded write touched can differ between states.
  const chunks = await nonZeroChunks(base)
  for (const w of rec.writes) {
    for (let at = Math.floor(w.offset / CHUNK) * CHUNK; at < w.offset + w.data.length; at += CHUNK) chunks.add(at)
  }
  const states: CrashState[] = []
  for (let k = 0; k <= rec.flushes.length; k++) {
    const n = rec.pending(k).length
    for (let i = 0; i <= n; i++) states.push({ flushes: k, apply: Array.from({ length: i }, (_, j) => j) })
  }
  t.comment(`${rec.writes.length} writes, ${rec.flushes.length} flushes, ${states.length} crash states`)
  const seen = new Set<number>()
  for (const state of states) {
    const dev = rec.crashState(base, state)
    if (await needsRecovery(dev)) await recover(dev)
    await toFile(dev, file, chunks)
    const blocks = superblockOf(file).blocksCountLo
    seen.add(blocks)
    const fsck = e2fsck(file)
    const what = `after ${state.flushes} flushes with ${state.apply.length} pending writes: ${blocks} blocks`
    if (fsck.status !== 0) {
      t.comment(fsck.out)
      t.fail(`e2fsck -fn not clean ${what}`)
      return
    }
    if (blocks !== r.oldBlocks && blocks !== r.newBlocks) {
      t.fail(`${what}: neither the old nor the new size`)
      return
    }
  }
  t.strictSame([...seen].sort((a, b) => a - b), [r.oldBlocks, r.newBlocks], `every state clean, each the old (${r.oldBlocks}) or the new (${r.newBlocks}) file system`)
})
