/*
 * The base images the reader fuzz mutates: made by mkfs.ext4 (default
 * features, metadata_csum), filled once by the kernel through a loop mount,
 * then held in memory. Their metadata is located by the reader itself: a
 * full walk through a recording verifier reports every structure it checks
 * (kind, block, owner), which is exactly the set of bytes worth corrupting.
 * Shared by test/vfs/engine/fuzz-reader.test.ts and bench/fuzz-engine.ts, so
 * it imports no tap.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { descSize, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE } from '../../../vfs/engine/format/superblock.ts'
import { Ext4Image } from '../../../vfs/engine/reader/image.ts'
import { NO_VERIFY } from '../../../vfs/engine/reader/verify.ts'
import type { MetadataContext, MetadataKind, Verifier } from '../../../vfs/engine/reader/verify.ts'
import { walkImage } from './fuzz-walk.ts'

export const BIG_DIR_ENTRIES = 3000

/** One metadata structure of a base image: where its bytes are and whom they belong to. */
export interface Target {
  kind: MetadataKind
  /** Byte offset in the image. */
  offset: number
  length: number
  ctx: MetadataContext
}

export interface BaseImage {
  name: string
  bytes: Buffer
  blockSize: number
  /** Every structure the reader verified during a clean walk, once each. */
  targets: Target[]
  /** Inodes a walk of the undamaged image visits. */
  inodesWalked: number
  /** What each call of that walk returned (see walkImage): the damaged walks are compared with it. */
  digests: Map<string, string>
}

export const BASES = {
  '4k': { size: 32 << 20, args: ['-b', '4096', '-g', '2048'] },
  '1k': { size: 16 << 20, args: ['-b', '1024', '-g', '4096'] },
} as const

export type BaseName = keyof typeof BASES

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${String(r.status)}: ${r.stderr}${r.error?.message ?? ''}`)
}

/** Why base images cannot be built here (they need root and loop devices), or undefined. */
export function whyNoBase(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root: filling the base images needs a loop mount'
  if (!fs.existsSync('/dev/loop-control')) return 'no /dev/loop-control: this machine has no loop devices'
  return undefined
}

/** What the kernel writes into each base: every structure kind the reader walks. */
function fill(root: string): void {
  let deep = root
  for (let i = 0; i < 6; i++) {
    deep = path.join(deep, `level-${i}`)
    fs.mkdirSync(deep)
    fs.writeFileSync(path.join(deep, 'note'), `depth ${i}\n`)
  }
  fs.mkdirSync(path.join(root, 'small'))
  for (let i = 0; i < 8; i++) fs.writeFileSync(path.join(root, 'small', `file-${i}`), Buffer.alloc(100 + i * 700, i + 1))
  fs.writeFileSync(path.join(root, 'empty'), '')
  fs.linkSync(path.join(root, 'small', 'file-1'), path.join(root, 'hardlink'))
  // A hole, then data far out: a sparse file whose extents are far apart.
  const sparse = fs.openSync(path.join(root, 'sparse'), 'w')
  fs.writeSync(sparse, Buffer.alloc(5000, 7), 0, 5000, 512 << 20)
  fs.ftruncateSync(sparse, 1 << 30)
  fs.closeSync(sparse)
  // Ten separate runs, more than the four extents i_block holds: the tree gets a leaf block.
  const frag = fs.openSync(path.join(root, 'fragmented'), 'w')
  for (let i = 0; i < 10; i++) fs.writeSync(frag, Buffer.alloc(3000, 0x40 + i), 0, 3000, i * 64 * 1024)
  fs.closeSync(frag)
  fs.symlinkSync('small/file-0', path.join(root, 'fast'))
  fs.symlinkSync(`${'x/'.repeat(100)}far`, path.join(root, 'slow'))
  fs.symlinkSync('level-0/level-1', path.join(root, 'to-dir'))
  fs.symlinkSync('loop-b', path.join(root, 'loop-a'))
  fs.symlinkSync('loop-a', path.join(root, 'loop-b'))
  fs.mkdirSync(path.join(root, 'big'))
  for (let i = 0; i < BIG_DIR_ENTRIES; i++) fs.writeFileSync(path.join(root, 'big', `entry-with-a-longish-name-${i.toString().padStart(5, '0')}`), '')
}

/** mkfs.ext4 + kernel fill of one base, read back as bytes. */
export function makeBaseBytes(name: BaseName): Buffer {
  const spec = BASES[name]
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-fuzz-base-'))
  try {
    const image = path.join(dir, 'fs.img')
    fs.closeSync(fs.openSync(image, 'w'))
    fs.truncateSync(image, spec.size)
    sh('mkfs.ext4', ['-F', '-q', ...spec.args, image])
    const mnt = path.join(dir, 'mnt')
    fs.mkdirSync(mnt)
    sh('mount', ['-o', 'loop', image, mnt])
    try {
      fill(mnt)
    } finally {
      sh('umount', [mnt])
    }
    return fs.readFileSync(image)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** Locate every metadata structure of bytes by walking it with a recording verifier. */
export async function loadBase(name: string, bytes: Buffer): Promise<BaseImage> {
  const seen: Array<{ kind: MetadataKind; ctx: MetadataContext }> = []
  const recording: Verifier = {
    verify(kind, _bytes, ctx) {
      seen.push({ kind, ctx: { ...ctx } })
    },
  }
  const dev = MemoryDevice.fromBuffer(bytes, { readOnly: true })
  const walk = await walkImage(dev, { verifier: recording, deadlineMs: 60_000 })
  if (walk.failures.length > 0 || Object.keys(walk.codes).length > 0 || walk.lookupMismatches > 0) {
    throw new Error(`base ${name} does not walk cleanly: ${JSON.stringify(walk.codes)} ${walk.failures.map((f) => f.message).join('; ')}`)
  }
  // And with every checksum verified: the base must be sound for its damaged copies to mean anything.
  const verified = await walkImage(dev, { deadlineMs: 60_000 })
  if (Object.keys(verified.codes).length > 0) throw new Error(`base ${name} fails verification: ${JSON.stringify(verified.codes)}`)
  const img = await Ext4Image.open(dev, { verifier: NO_VERIFY })
  const bs = img.blockSize
  const ds = descSize(img.sb)
  const gdTable = (img.sb.firstDataBlock + 1) * bs
  const targets = new Map<string, Target>()
  for (const { kind, ctx } of seen) {
    let offset: number
    let length: number
    if (kind === 'superblock') [offset, length] = [SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE]
    else if (kind === 'group-desc') [offset, length] = [gdTable + (ctx.group ?? 0) * ds, ds]
    else if (kind === 'inode') {
      const ino = ctx.ino ?? 1
      const gd = await img.groupDesc(Math.floor((ino - 1) / img.sb.inodesPerGroup))
      ;[offset, length] = [gd.inodeTable * bs + ((ino - 1) % img.sb.inodesPerGroup) * img.inodeSize, img.inodeSize]
    } else [offset, length] = [ctx.block * bs, bs]
    const key = `${kind}@${offset}`
    if (!targets.has(key)) targets.set(key, { kind, offset, length, ctx })
  }
  return { name, bytes, blockSize: bs, targets: [...targets.values()], inodesWalked: walk.inodes, digests: walk.digests }
}
