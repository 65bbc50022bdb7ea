/*
 * What the extended attribute fsck tests share, on buildRepairBase's image
 * (1 KiB blocks): one small file given an attribute too large for its inode
 * (debugfs ea_set, so it lives in a block), other files pointed at that block
 * as the kernel shares one, the block's h_refcount and checksum written here
 * independently of the code under test, and the judges' readings through
 * debugfs (i_file_acl, i_blocks, the attribute's value).
 */
import fs from 'node:fs'
import { crc32cUpdate } from '../../../vfs/engine/crc32c.ts'
import { csumSeed } from '../../../vfs/engine/reader/csum-verifier.ts'
import { Ext4Image } from '../../../vfs/engine/reader/image.ts'
import { FileReadAt } from '../../../vfs/engine/reader/read-at.ts'
import { NO_VERIFY } from '../../../vfs/engine/reader/verify.ts'
import { seededBytes } from './format-helpers.ts'
import { debugfs, inodeOf } from './fsck-helpers.ts'

/** buildRepairBase's block size. */
export const EA_BS = 1024
/** The attribute every sharer holds. */
export const EA_NAME = 'user.shared'

export function aclOf(image: string, p: string): number {
  const m = /File ACL: (\d+)/.exec(debugfs(image, `stat ${p}`, false))
  if (m?.[1] === undefined) throw new Error(`no File ACL for ${p}`)
  return Number(m[1])
}

/** i_blocks as debugfs reads it (512-byte units). */
export function blockCount(image: string, p: string): number {
  const m = /Blockcount: (\d+)/.exec(debugfs(image, `stat ${p}`, false))
  if (m?.[1] === undefined) throw new Error(`no Blockcount for ${p}`)
  return Number(m[1])
}

export function readBlock(image: string, block: number): Buffer {
  const fd = fs.openSync(image, 'r')
  const b = Buffer.alloc(EA_BS)
  fs.readSync(fd, b, 0, EA_BS, block * EA_BS)
  fs.closeSync(fd)
  return b
}

export function writeBlock(image: string, block: number, b: Buffer): void {
  const fd = fs.openSync(image, 'r+')
  fs.writeSync(fd, b, 0, EA_BS, block * EA_BS)
  fs.closeSync(fd)
}

/** The attribute block's checksum as ext4 defines it: crc32c from the fs seed over le64 block number, then the block with h_checksum zero. */
export async function eaCsum(image: string, block: number, b: Buffer): Promise<number> {
  const dev = await FileReadAt.open(image)
  try {
    const img = await Ext4Image.open(dev, { verifier: NO_VERIFY })
    const le = Buffer.alloc(8)
    le.writeBigUInt64LE(BigInt(block))
    const z = Buffer.from(b)
    z.writeUInt32LE(0, 0x10)
    return crc32cUpdate(crc32cUpdate(csumSeed(img.sb), le), z)
  } finally {
    await dev.close()
  }
}

/** Rewrite the block's checksum after b was changed; then write it. */
export async function writeWithCsum(image: string, block: number, b: Buffer): Promise<void> {
  b.writeUInt32LE(await eaCsum(image, block, b), 0x10)
  writeBlock(image, block, b)
}

/** Write h_refcount of the attribute block, and its checksum (the damage is the count alone). */
export async function setRefcount(image: string, block: number, n: number): Promise<void> {
  const b = readBlock(image, block)
  b.writeUInt32LE(n, 4)
  await writeWithCsum(image, block, b)
}

/** p names the attribute block too, with its i_blocks counting it (as the kernel shares a block). */
export function share(image: string, p: string, block: number): void {
  const blocks = blockCount(image, p)
  debugfs(image, `sif ${p} file_acl ${block}`)
  debugfs(image, `sif ${p} blocks ${blocks + EA_BS / 512}`)
}

/** The attribute's value as debugfs reads it (not our code). */
export function eaValue(image: string, p: string): string {
  const out = debugfs(image, `ea_get ${p} ${EA_NAME}`, false)
  const m = /= "([^"]*)"/.exec(out)
  if (m?.[1] === undefined) throw new Error(`no ${EA_NAME} on ${p}: ${out}`)
  return m[1]
}

interface SmallFile {
  path: string
  ino: number
}

/**
 * Give base's attribute to a one-block file with other one-block files before and after it in
 * inode order (pass 1's claim order): the holder, the first and the last such file, the value
 * (300 bytes of seeded hex: more than a 256-byte inode holds past its fields) and its block.
 */
export function eaFixture(base: string, seed: number): { holder: SmallFile; before: SmallFile; after: SmallFile; value: string; ea: number } {
  const files = ['/a/b/c/f.txt', ...Array.from({ length: 27 }, (_, i) => `/many/f${i + 1}`)]
  const small = files.map((p) => ({ path: p, ino: inodeOf(base, p) })).sort((x, y) => x.ino - y.ino)
  const holder = small[Math.floor(small.length / 2)]
  const before = small[0]
  const after = small[small.length - 1]
  if (holder === undefined || before === undefined || after === undefined || !(before.ino < holder.ino && holder.ino < after.ino)) throw new Error(`fixture: one-block files ${JSON.stringify(small)}`)
  const value = seededBytes(seed + 1)(150).toString('hex')
  debugfs(base, `ea_set ${holder.path} ${EA_NAME} ${value}`)
  const ea = aclOf(base, holder.path)
  if (!(ea > 0)) throw new Error(`fixture: ${holder.path} got no extended attribute block`)
  return { holder, before, after, value, ea }
}
