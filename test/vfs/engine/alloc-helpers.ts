/*
 * What the allocator tests share: small mkfs.ext4 images of several groups (some left
 * BLOCK_UNINIT / INODE_UNINIT by mkfs), opened through the DirectTxnManager, and e2fsprogs as the
 * judge (e2fsck -fn, dumpe2fs's per-group free lists).
 */
import type { Test } from 'tap'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { Ext4Allocator } from '../../../vfs/engine/alloc/ext4-allocator.ts'
import type { AllocatorOptions } from '../../../vfs/engine/alloc/ext4-allocator.ts'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import { DirectTxnManager } from '../../../vfs/engine/txn/direct-txn.ts'
import { mkfs, scratch } from './format-helpers.ts'
import { prngU32 } from '../../helpers/prng.ts'

export interface Layout {
  name: string
  size: number
  blockSize: number
  args: string[]
}

/** 4 groups of 4 KiB blocks; 8 groups of 1 KiB blocks. Debian's default features. */
export const LAYOUTS: Layout[] = [
  { name: '4k', size: 64 << 20, blockSize: 4096, args: ['-b', '4096', '-g', '4096', '-N', '2048'] },
  { name: '1k', size: 16 << 20, blockSize: 1024, args: ['-b', '1024', '-g', '2048', '-N', '1024'] },
]

export function makeImage(t: Test, layout: Layout, extra: string[] = []): string {
  const file = path.join(scratch(t, `alloc-${layout.name}`), 'fs.img')
  mkfs(file, layout.size, [...layout.args, ...extra])
  return file
}

export interface Opened {
  dev: ImageFile
  txm: DirectTxnManager
  alloc: Ext4Allocator
  close: () => Promise<void>
}

export async function openAlloc(file: string, blockSize: number, options: AllocatorOptions = {}): Promise<Opened> {
  const dev = await ImageFile.open(file)
  const txm = new DirectTxnManager(dev, blockSize)
  const alloc = await Ext4Allocator.open(txm, dev.size, options)
  let closed = false
  return {
    dev,
    txm,
    alloc,
    close: async () => {
      if (closed) return
      closed = true
      await txm.close()
      await dev.close()
    },
  }
}

export interface Fsck {
  status: number | null
  out: string
}

export function fsck(file: string): Fsck {
  const r = spawnSync('e2fsck', ['-fn', file], { encoding: 'utf8' })
  return { status: r.status, out: r.stdout + r.stderr }
}

/** Every group's free block and free inode lists as dumpe2fs prints them (uninitialised groups included). */
export function freeLists(file: string): string[] {
  const r = spawnSync('dumpe2fs', [file], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`dumpe2fs: ${r.stderr}`)
  return r.stdout.split('\n').filter((l) => /^\s+Free (blocks|inodes): /.test(l)).map((l) => l.trim())
}

/** The summary counters of the superblock as dumpe2fs prints them. */
export function superCounts(file: string): { freeBlocks: number; freeInodes: number } {
  const r = spawnSync('dumpe2fs', ['-h', file], { encoding: 'utf8' })
  const num = (label: string): number => Number(new RegExp(`^${label}:\\s+(\\d+)`, 'm').exec(r.stdout)?.[1] ?? NaN)
  return { freeBlocks: num('Free blocks'), freeInodes: num('Free inodes') }
}

/** A small seeded generator of integers in [0, n): the shared generator's raw outputs mod n. */
export function seededInt(seed: number): (n: number) => number {
  const u32 = prngU32(seed)
  return (n) => u32() % n
}
