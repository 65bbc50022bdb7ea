/*
 * Mutations of a base image's metadata, seeded so each image can be made
 * again from (base, seed). Aimed at the structures the reader decodes (see
 * fuzz-base.ts): bit flips, random bytes, a zeroed or 0xff-filled structure,
 * boundary values (0, 1, 0xffff, 0xffffffff, off by one) in the length,
 * count and pointer fields ext4 documents, and pointers bent back at other
 * metadata (the structure's own block, the root directory) to make loops.
 */
import type { MetadataKind } from '../../../vfs/engine/reader/verify.ts'
import type { Target } from './fuzz-base.ts'
import { prngU32 } from '../../helpers/prng.ts'

export type Width = 1 | 2 | 4

/** A field worth a boundary value: offset in its structure, width, and whether it holds a block or inode number. */
export interface Field {
  at: number
  width: Width
  pointer?: boolean
}

const f = (at: number, width: Width, pointer = false): Field => ({ at, width, pointer })

const SUPERBLOCK_FIELDS: Field[] = [
  f(0x0, 4), f(0x4, 4), f(0x14, 4), f(0x18, 4), f(0x1c, 4), f(0x20, 4), f(0x24, 4), f(0x28, 4), f(0x4c, 4), f(0x54, 4), f(0x58, 2),
  f(0x5c, 4), f(0x60, 4), f(0x64, 4), f(0xce, 2), f(0xe0, 4, true), f(0xfe, 2), f(0x104, 4), f(0x150, 4), f(0x15c, 2), f(0x175, 1), f(0x270, 4),
]
const GROUP_DESC_FIELDS: Field[] = [f(0x0, 4, true), f(0x4, 4, true), f(0x8, 4, true), f(0xc, 2), f(0xe, 2), f(0x12, 2), f(0x1c, 2)]
const GROUP_DESC_64_FIELDS: Field[] = [f(0x20, 4), f(0x24, 4), f(0x28, 4), f(0x32, 2)]
/** An extent header then four 12-byte entries (ee_block, ee_len, ee_start_hi, ee_start_lo; or ei_block, ei_leaf_lo, ei_leaf_hi). */
function extentFields(base: number, entries: number): Field[] {
  const out = [f(base, 2), f(base + 2, 2), f(base + 4, 2), f(base + 6, 2)]
  for (let i = 0; i < entries; i++) {
    const e = base + 12 + i * 12
    out.push(f(e, 4), f(e + 4, 2, true), f(e + 4, 4, true), f(e + 6, 2), f(e + 8, 4, true))
  }
  return out
}
const INODE_FIELDS: Field[] = [f(0x0, 2), f(0x4, 4), f(0x6c, 4), f(0x1a, 2), f(0x20, 4), f(0x64, 4), f(0x80, 2), ...extentFields(0x28, 4)]

/** The rec_len chain of a directory block, as the base holds it: each entry's inode, rec_len, name_len, type. */
function dirFields(block: Buffer): Field[] {
  const out: Field[] = []
  let off = 0
  while (off + 8 <= block.length && out.length < 4 * 64) {
    out.push(f(off, 4, true), f(off + 4, 2), f(off + 6, 1), f(off + 7, 1))
    const recLen = block.readUInt16LE(off + 4)
    if (recLen < 12) break
    off += recLen
  }
  return out
}

/** dx_root (after "." and "..": info, limit/count, entries) or dx_node (fake entry, limit/count, entries). */
function dxFields(block: Buffer): Field[] {
  const isRoot = block.readUInt16LE(4) === 12
  const countAt = isRoot ? 0x20 : 0x8
  const out = isRoot ? [f(0x18, 4), f(0x1c, 1), f(0x1d, 1), f(0x1e, 1), f(0x1f, 1)] : [f(0x4, 2)]
  out.push(f(countAt, 2), f(countAt + 2, 2), f(countAt + 4, 4, true))
  const count = Math.min(block.readUInt16LE(countAt + 2), 16)
  for (let i = 1; i < count; i++) out.push(f(countAt + i * 8, 4), f(countAt + i * 8 + 4, 4, true))
  return out
}

export function fieldsOf(t: Target, image: Buffer): Field[] {
  const bytes = image.subarray(t.offset, t.offset + t.length)
  switch (t.kind) {
    case 'superblock':
      return SUPERBLOCK_FIELDS
    case 'group-desc':
      return t.length >= 64 ? [...GROUP_DESC_FIELDS, ...GROUP_DESC_64_FIELDS] : GROUP_DESC_FIELDS
    case 'inode':
      return INODE_FIELDS
    case 'extent-block':
      return extentFields(0, Math.min(bytes.readUInt16LE(2), 16))
    case 'dir-block':
      return dirFields(bytes)
    case 'dx-block':
      return dxFields(bytes)
    case 'block-bitmap':
    case 'inode-bitmap':
      return []
  }
}

/** The shared seeded generator (mulberry32) as raw words, integers and picks, so a printed seed makes the same image. */
export function rng(seed: number): { u32(): number; int(n: number): number; pick<T>(a: readonly T[]): T } {
  const u32 = prngU32(seed)
  const int = (n: number): number => Math.floor((u32() / 2 ** 32) * n)
  return {
    u32,
    int,
    pick: <T>(a: readonly T[]): T => {
      const v = a[int(a.length)]
      if (v === undefined) throw new Error('pick from an empty list')
      return v
    },
  }
}

export type MutationKind = 'bitflip' | 'byte' | 'bytes' | 'zero' | 'ones' | 'boundary' | 'pointer'

export interface Mutation {
  kind: MutationKind
  target: MetadataKind
  /** Image offset of the first byte changed. */
  at: number
  /** The bytes written there. */
  bytes: Buffer
}

const KINDS: MutationKind[] = ['bitflip', 'bitflip', 'byte', 'bytes', 'zero', 'ones', 'boundary', 'boundary', 'boundary', 'pointer']

function writeWidth(value: number, width: Width): Buffer {
  const out = Buffer.alloc(width)
  out.writeUIntLE(value % 2 ** (8 * width), 0, width)
  return out
}

/** One mutation of target t in image (not applied); image is the unmutated base. */
export function mutation(r: ReturnType<typeof rng>, t: Target, image: Buffer, blockSize: number): Mutation {
  const fields = fieldsOf(t, image)
  let kind = r.pick(KINDS)
  if ((kind === 'boundary' || kind === 'pointer') && fields.length === 0) kind = 'bitflip'
  const m = (at: number, bytes: Buffer): Mutation => ({ kind, target: t.kind, at, bytes })
  switch (kind) {
    case 'bitflip': {
      const at = t.offset + r.int(t.length)
      return m(at, Buffer.from([(image[at] ?? 0) ^ (1 << r.int(8))]))
    }
    case 'byte':
      return m(t.offset + r.int(t.length), Buffer.from([r.int(256)]))
    case 'bytes': {
      const n = 1 + r.int(16)
      const at = t.offset + r.int(t.length - n + 1)
      const bytes = Buffer.alloc(n)
      for (let i = 0; i < n; i++) bytes[i] = r.int(256)
      return m(at, bytes)
    }
    case 'zero':
      return m(t.offset, Buffer.alloc(t.length))
    case 'ones':
      return m(t.offset, Buffer.alloc(t.length, 0xff))
    case 'boundary': {
      const field = r.pick(fields)
      const old = image.readUIntLE(t.offset + field.at, field.width)
      const max = 2 ** (8 * field.width) - 1
      const value = r.pick([0, 1, 0xffff, 0xffffffff, max, max - 1, old + 1, old - 1 + max + 1, old * 2, 0x8000, 0x7fff])
      return m(t.offset + field.at, writeWidth(value, field.width))
    }
    case 'pointer': {
      const pointers = fields.filter((x) => x.pointer === true)
      const field = pointers.length > 0 ? r.pick(pointers) : r.pick(fields)
      // The structure's own block (an extent node or htree node pointing at itself), its neighbours, or a small inode number.
      const own = Math.floor(t.offset / blockSize)
      const value = r.pick([own, own + 1, own - 1, 0, 1, 2, 11, 12, r.int(own * 2 + 16)])
      return m(t.offset + field.at, writeWidth(Math.max(0, value), field.width))
    }
  }
}
