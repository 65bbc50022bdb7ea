/*
 * The judges of an extent-tree test's result, each independent of the code under test: what the
 * test expects (a model of logical block -> physical block and contents), our reader, e2fsck -fn,
 * and the kernel's loop mount.
 */
import type { Test } from 'tap'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { EXTENT_HEADER_SIZE, decodeExtentHeader } from '../../../vfs/engine/format/extent.ts'
import type { MappedRun } from '../../../vfs/engine/extent/tree.ts'
import { blockData, closeFs, FILE_INO, openFs, readInode, writeInode } from './extent-helpers.ts'
import type { Fs } from './extent-helpers.ts'
import { openImage, sh, whyNoLoopMount } from './format-helpers.ts'

/** What each mapped logical block should be: its physical block, and the tag its data was written with (undefined: unwritten, reads as zeros). */
export type Model = Map<number, { phys: number; tag: number | undefined }>

/**
 * Record the runs mapOrAllocate returned: fresh initialized blocks get distinct data written
 * (before the transaction ends: ordered mode), existing ones must be where the model says.
 * Returns how many existing blocks disagreed with the model.
 */
export async function applyRuns(fs: Fs, model: Model, runs: MappedRun[], tag: number): Promise<number> {
  let wrong = 0
  const writes: Array<Promise<void>> = []
  for (const r of runs) {
    if (!r.fresh) {
      for (let i = 0; i < r.count; i++) if (model.get(r.lblk + i)?.phys !== r.start + i) wrong++
      continue
    }
    const bufs: Buffer[] = []
    for (let i = 0; i < r.count; i++) {
      if (model.has(r.lblk + i)) wrong++
      model.set(r.lblk + i, { phys: r.start + i, tag: r.uninit ? undefined : tag })
      bufs.push(blockData(fs.bs, r.lblk + i, tag))
    }
    if (!r.uninit) writes.push(fs.dev.write(r.start * fs.bs, Buffer.concat(bufs)))
  }
  await Promise.all(writes)
  return wrong
}

export function forget(model: Model, from: number, to: number): void {
  for (const l of [...model.keys()]) if (l >= from && l < to) model.delete(l)
}

export function expected(bs: number, lblk: number, tag: number | undefined): Buffer {
  return tag === undefined ? Buffer.alloc(bs) : blockData(bs, lblk, tag)
}

/** Depth of the tree in an inode's i_block. */
export function depthOf(iblock: Buffer): number {
  return decodeExtentHeader(iblock.subarray(0, EXTENT_HEADER_SIZE)).depth
}

/** Set i_size past the last mapped block (plus a hole at the tail), store the inode, close the image. */
export async function finish(fs: Fs, model: Model): Promise<void> {
  const h = await fs.tm.begin()
  const inode = await readInode(fs, h, FILE_INO)
  const last = Math.max(-1, ...model.keys())
  inode.size = last < 0 ? 0 : (last + 1) * fs.bs + 123
  await writeInode(fs, h, FILE_INO, inode)
  fs.tm.end(h)
  await closeFs(fs)
}

/** Our reader maps and reads every modelled block as the model says, and probes holes. */
export async function checkReader(t: Test, file: string, bs: number, model: Model, holes: number[]): Promise<void> {
  const img = await openImage(t, file)
  const inode = await img.readInode(FILE_INO)
  let bad = 0
  for (const [lblk, { phys, tag }] of model) {
    const m = await img.mapBlock(FILE_INO, inode, lblk)
    if (m.extent === undefined || m.extent.start + (lblk - m.extent.block) !== phys || m.extent.uninit !== (tag === undefined)) bad++
    else if (!(await img.readFile(FILE_INO, inode, lblk * bs, bs)).equals(expected(bs, lblk, tag))) bad++
  }
  for (const lblk of holes) if (!model.has(lblk) && (await img.mapBlock(FILE_INO, inode, lblk)).extent !== undefined) bad++
  t.equal(bad, 0, `reader agrees on ${model.size} mapped blocks and ${holes.length} probes`)
}

export function checkFsck(t: Test, file: string, what: string): void {
  const r = spawnSync('e2fsck', ['-fn', file], { encoding: 'utf8' })
  t.equal(r.status, 0, `e2fsck -fn clean ${what}`, { output: `${r.stdout}${r.stderr}` })
}

/** The kernel (read-only loop mount) reads every modelled block byte-exact, and st_blocks matches i_blocks. */
export async function checkKernel(t: Test, file: string, bs: number, model: Model, iBlocks512: number): Promise<void> {
  const why = whyNoLoopMount()
  if (why !== undefined) {
    t.comment(`kernel check skipped: ${why}`)
    return
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-mnt-'))
  sh('mount', ['-o', 'loop,ro', file, dir])
  try {
    const fd = fs.openSync(path.join(dir, 'f'), 'r')
    try {
      const st = fs.fstatSync(fd)
      t.equal(st.blocks, iBlocks512, 'st_blocks is i_blocks')
      const buf = Buffer.alloc(bs)
      let bad = 0
      for (const [lblk, { tag }] of model) {
        fs.readSync(fd, buf, 0, bs, lblk * bs)
        if (!buf.equals(expected(bs, lblk, tag))) bad++
      }
      t.equal(bad, 0, `kernel reads ${model.size} blocks byte-exact`)
    } finally {
      fs.closeSync(fd)
    }
  } finally {
    sh('umount', [dir])
    fs.rmdirSync(dir)
  }
}

/** Truncate the file to nothing: the bitmaps return to `start`, i_blocks to 0, the root to an empty leaf. */
export async function freeAll(t: Test, file: string, start: unknown): Promise<void> {
  const fs2 = await openFs(t, file)
  const h = await fs2.tm.begin()
  const inode = await readInode(fs2, h, FILE_INO)
  await fs2.tree.truncate(h, FILE_INO, inode, 0)
  inode.size = 0
  await writeInode(fs2, h, FILE_INO, inode)
  t.equal(inode.blocks, 0, 'i_blocks back to 0')
  t.equal(inode.block.readUInt16LE(2), 0, 'root has no entries')
  t.equal(depthOf(inode.block), 0, 'root is a leaf again')
  t.same(await fs2.alloc.snapshot(h), start, 'block bitmaps and free counts back to their start state')
  fs2.tm.end(h)
  await closeFs(fs2)
  checkFsck(t, file, 'after freeing everything')
}
