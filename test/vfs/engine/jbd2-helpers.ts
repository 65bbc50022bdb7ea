/*
 * What the jbd2 tests share: images from the real mkfs.ext4 whose journal carries the features the
 * kernel sets at first mount (64bit, csum v3), debugfs's journal writer, and an image comparison
 * that ignores the superblock fields e2fsck stamps on every run (s_wtime, s_kbytes_written).
 */
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import { locateJournal } from '../../../vfs/engine/jbd2/journal-map.ts'
import { newJournalSuperblock } from '../../../vfs/engine/jbd2/superblock.ts'
import { mkfs, sh } from './format-helpers.ts'

export const MiB = 1024 * 1024

/** A 32 MiB image with blockSize blocks; csum: give the journal 64bit + csum v3 as the kernel would. */
export async function makeImage(dir: string, name: string, blockSize: number, csum = true, mkfsArgs: string[] = []): Promise<string> {
  const image = path.join(dir, name)
  mkfs(image, 32 * MiB, ['-b', String(blockSize), ...mkfsArgs])
  if (csum) {
    const dev = await ImageFile.open(image)
    try {
      const loc = await locateJournal(dev)
      const sb = newJournalSuperblock({ blockSize, maxlen: loc.map.blocks, uuid: loc.sb.uuid })
      await dev.write(loc.map.phys(0) * blockSize, sb)
      await dev.flush()
    } finally {
      await dev.close()
    }
  }
  return image
}

/** Run debugfs -w with one command per line; throw when it reports an error. */
export function debugfsWrite(image: string, cmds: string[]): string {
  const r = spawnSync('debugfs', ['-w', '-f', '-', image], { input: cmds.join('\n') + '\n', encoding: 'utf8' })
  const noise = r.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('debugfs ') && !l.startsWith('debugfs:'))
  if (r.status !== 0 || noise.length > 0) throw new Error(`debugfs ${cmds.join('; ')}: exit ${r.status}: ${r.stderr}`)
  return r.stdout
}

/** e2fsck replaying the journal and nothing else. */
export function e2fsckReplay(image: string): void {
  sh('e2fsck', ['-E', 'journal_only', '-y', image])
}

export function e2fsckClean(image: string): { status: number | null; out: string } {
  const r = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' })
  return { status: r.status, out: r.stdout + r.stderr }
}

/** Offsets (image bytes) where a and b differ, ignoring e2fsck's run stamps in the primary superblock. */
export function imageDiff(a: string, b: string): number[] {
  const x = fs.readFileSync(a)
  const y = fs.readFileSync(b)
  if (x.length !== y.length) return [-1]
  const ignore = new Set<number>()
  const sb = 1024
  for (const [at, n] of [[0x30, 4], [0x274, 1], [0x178, 8], [0x3fc, 4]] as const) for (let i = 0; i < n; i++) ignore.add(sb + at + i)
  const out: number[] = []
  const chunk = 4096
  for (let c = 0; c < x.length; c += chunk) {
    if (x.subarray(c, c + chunk).equals(y.subarray(c, c + chunk))) continue
    for (let i = c; i < Math.min(x.length, c + chunk); i++) if (x[i] !== y[i] && !ignore.has(i)) out.push(i)
  }
  return out
}

export function blockOf(image: string, block: number, blockSize: number): Buffer {
  const fd = fs.openSync(image, 'r')
  try {
    const b = Buffer.alloc(blockSize)
    fs.readSync(fd, b, 0, blockSize, block * blockSize)
    return b
  } finally {
    fs.closeSync(fd)
  }
}

/** Recover (or otherwise use) an image file through our block device, closing it after. */
export async function withDevice<T>(image: string, fn: (dev: ImageFile) => Promise<T>): Promise<T> {
  const dev = await ImageFile.open(image)
  try {
    return await fn(dev)
  } finally {
    await dev.close()
  }
}
