/*
 * What the mkfs tests share: a reference image from the real mkfs.ext4, ours
 * made with the same UUID, hash seed and time (so the two can be compared
 * byte for byte), e2fsck's verdict, and dumpe2fs's report.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import { decodeSuperblock } from '../../../vfs/engine/format/superblock.ts'
import type { Superblock } from '../../../vfs/engine/format/superblock.ts'
import { makeFileSystem } from '../../../vfs/engine/mkfs/mkfs.ts'
import type { MkfsOptions, MkfsResult } from '../../../vfs/engine/mkfs/mkfs.ts'
import { mkfs } from '../../../cli/mkfs.ts'
import { mkfs as mkfsExt4 } from './format-helpers.ts'

export function superblockOf(file: string): Superblock {
  const fd = fs.openSync(file, 'r')
  try {
    const buf = Buffer.alloc(1024)
    fs.readSync(fd, buf, 0, 1024, 1024)
    return decodeSuperblock(buf)
  } finally {
    fs.closeSync(fd)
  }
}

/** Our file system on a new sparse image of size bytes. */
export async function ourMkfs(file: string, size: number, opts: Omit<MkfsOptions, 'zeroed'> = {}): Promise<MkfsResult> {
  const dev = await ImageFile.create(file, size, { overwrite: true })
  try {
    return await makeFileSystem(dev, { zeroed: true, ...opts })
  } finally {
    await dev.close()
  }
}

/** mkfs.ext4 -b bs on a sparse image, then ours beside it with the reference's UUID, hash seed and time. */
export async function pair(dir: string, name: string, size: number, bs: 1024 | 4096): Promise<{ ref: string; ours: string; result: MkfsResult }> {
  const ref = `${dir}/${name}-ref.img`
  const ours = `${dir}/${name}-ours.img`
  mkfsExt4(ref, size, ['-b', String(bs)])
  const sb = superblockOf(ref)
  const result = await ourMkfs(ours, size, { blockSize: bs, uuid: sb.uuid, hashSeed: sb.hashSeed, time: sb.mkfsTime })
  return { ref, ours, result }
}

export function e2fsck(file: string): { status: number | null; out: string } {
  const r = spawnSync('e2fsck', ['-fn', file], { encoding: 'utf8' })
  return { status: r.status, out: r.stdout + r.stderr }
}

/** dumpe2fs's report as field -> value (the header) and the group lines. */
export function dumpe2fs(file: string, headerOnly: boolean): { fields: Map<string, string>; groups: string[] } {
  const r = spawnSync('dumpe2fs', headerOnly ? ['-h', file] : [file], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`dumpe2fs ${file}: exit ${r.status}: ${r.stderr}`)
  const fields = new Map<string, string>()
  const groups: string[] = []
  let inGroups = false
  for (const line of r.stdout.split('\n')) {
    if (/^Group \d+:/.test(line)) inGroups = true
    if (inGroups) groups.push(line.replace(/csum 0x[0-9a-f]+/g, 'csum'))
    else {
      const m = /^([^:]+):\s*(.*)$/.exec(line)
      if (m !== null) fields.set(m[1] ?? '', (m[2] ?? '').trim())
    }
  }
  return { fields, groups }
}

/**
 * The blocks of file that hold data (FIEMAP, through filefrag), or undefined where filefrag cannot
 * tell: comparing only those keeps a byte comparison of two sparse 1 GiB images to milliseconds.
 */
function dataBlocks(file: string, bs: number): Set<number> | undefined {
  const r = spawnSync('filefrag', ['-v', `-b${bs}`, file], { encoding: 'utf8' })
  if (r.status !== 0) return undefined
  const out = new Set<number>()
  for (const line of r.stdout.split('\n')) {
    const m = /^\s*\d+:\s+(\d+)\.\.\s*(\d+):/.exec(line)
    if (m === null) continue
    for (let b = Number(m[1]); b <= Number(m[2]); b++) out.add(b)
  }
  return out
}

/** Numbers of the blocks (of bs bytes) where two equally long images differ. */
export function differingBlocks(a: string, b: string, bs: number): number[] {
  const fa = fs.openSync(a, 'r')
  const fb = fs.openSync(b, 'r')
  try {
    const size = fs.fstatSync(fa).size
    if (fs.fstatSync(fb).size !== size) throw new Error(`${a} and ${b} differ in size`)
    const da = dataBlocks(a, bs)
    const db = dataBlocks(b, bs)
    // Holes in both read as zeros in both: only blocks with data on either side can differ.
    const candidates = da !== undefined && db !== undefined ? [...new Set([...da, ...db])].sort((x, y) => x - y) : undefined
    const ba = Buffer.alloc(bs)
    const bb = Buffer.alloc(bs)
    const out: number[] = []
    const check = (blk: number): void => {
      fs.readSync(fa, ba, 0, bs, blk * bs)
      fs.readSync(fb, bb, 0, bs, blk * bs)
      if (!ba.equals(bb)) out.push(blk)
    }
    if (candidates !== undefined) for (const blk of candidates) check(blk)
    else for (let blk = 0; blk < size / bs; blk++) check(blk)
    return out
  } finally {
    fs.closeSync(fa)
    fs.closeSync(fb)
  }
}

/** Run the command in this process, capturing what it writes. */
export async function mkfsCli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = ''
  let stderr = ''
  const out = process.stdout.write.bind(process.stdout)
  const err = process.stderr.write.bind(process.stderr)
  process.stdout.write = ((s: string | Uint8Array) => ((stdout += String(s)), true))
  process.stderr.write = ((s: string | Uint8Array) => ((stderr += String(s)), true))
  try {
    const code = await mkfs(argv)
    return { code, stdout, stderr }
  } finally {
    process.stdout.write = out
    process.stderr.write = err
  }
}
