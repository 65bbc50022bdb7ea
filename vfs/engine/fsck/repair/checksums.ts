/*
 * Pass 1 repair: a checksum that is the only thing wrong. An inode whose sum
 * fails but which pass 1 found nothing else wrong with (it decodes, its
 * fields and extent tree check out) gets its sum rewritten; so does an extent
 * tree block that still decodes as one, of an inode otherwise sound. This is
 * e2fsck -fy's "inode passes checks, but checksum does not match inode. Fix?
 * yes" and "extent block passes checks, but checksum does not match". An
 * inode with any other pass-1 problem is left: its sum is the one witness
 * that the record is not what was written.
 */
import { crc32cUpdate } from '../../crc32c.ts'
import { decodeExtentNode, extentTailOffset } from '../../format/extent.ts'
import { csumSeed, inodeSeed } from '../../reader/csum-verifier.ts'
import { errText } from '../problems.ts'
import { updateInode } from './inode-write.ts'
import { fixed, left } from './record.ts'
import type { Repair, StepInput } from './record.ts'

const SUMS = new Set(['INODE_CSUM', 'EXTENT_CSUM'])

function sharesBlock(runs: ReadonlyArray<[number, number]> | undefined, block: number): boolean {
  return runs?.some(([b, n]) => b <= block && block < b + n) ?? false
}

export async function repairChecksums({ ctx, problems, h }: StepInput): Promise<Repair[]> {
  const out: Repair[] = []
  // Inodes pass 1 found anything but a bad sum wrong with.
  const faulty = new Map<number, string>()
  for (const p of problems) if (p.pass === 1 && p.severity === 'error' && p.ino !== undefined && !SUMS.has(p.code)) faulty.set(p.ino, p.code)
  for (const p of problems) {
    if (p.pass !== 1 || !SUMS.has(p.code) || p.ino === undefined) continue
    const ino = p.ino
    // A tree block the inode shares with another: its sum is right for the other owner; the clone
    // step gives this inode a copy with its own sum (rewriting it here would break the other's).
    if (p.code === 'EXTENT_CSUM' && p.block !== undefined && sharesBlock(ctx.dupRuns.get(ino), p.block)) continue
    const where = { ino, ...(p.block === undefined ? {} : { block: p.block }) }
    const other = faulty.get(ino)
    if (other !== undefined) {
      out.push(left(1, p.code, `${p.message} (not rewritten: the inode also has ${other})`, where))
      continue
    }
    if (p.code === 'INODE_CSUM') {
      if (await updateInode(ctx, h, ino)) out.push(fixed(1, 'INODE_CSUM_SET', `inode ${ino}: checksum rewritten (the inode passes checks)`, where))
      else out.push(left(1, p.code, `${p.message} (not rewritten: the inode table is outside the file system)`, where))
      continue
    }
    if (p.block === undefined) continue
    const buf = await h.get(p.block)
    try {
      const node = decodeExtentNode(buf, ctx.img.blockSize, `extent block ${p.block}`)
      const tail = extentTailOffset(node.header)
      if (tail + 4 > buf.length) throw new RangeError(`eh_max ${node.header.max} leaves no room for the tail`)
      const generation = (await ctx.img.readInode(ino)).generation
      buf.writeUInt32LE(crc32cUpdate(inodeSeed(csumSeed(ctx.img.sb), ino, generation), buf.subarray(0, tail)), tail)
    } catch (err) {
      out.push(left(1, p.code, `${p.message} (not rewritten: ${errText(err)})`, where))
      continue
    }
    h.dirty(p.block)
    out.push(fixed(1, 'EXTENT_CSUM_SET', `inode ${ino} extent block ${p.block}: checksum rewritten (the block passes checks)`, where))
  }
  return out
}
