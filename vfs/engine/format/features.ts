/*
 * Feature flags of the superblock (s_feature_compat / _incompat / _ro_compat)
 * by the names dumpe2fs and mkfs.ext4 -O use (e2fsprogs lib/e2p/feature.c),
 * and which of them we implement. The rule the kernel follows: an unknown
 * incompat bit forbids reading, an unknown ro_compat bit forbids writing, an
 * unknown compat bit forbids neither (e2fsck is stricter; so are we for rw).
 */

export type FeatureKind = 'compat' | 'incompat' | 'ro_compat'

export const COMPAT = {
  dir_prealloc: 0x1,
  imagic_inodes: 0x2,
  has_journal: 0x4,
  ext_attr: 0x8,
  resize_inode: 0x10,
  dir_index: 0x20,
  lazy_bg: 0x40,
  snapshot_bitmap: 0x100,
  sparse_super2: 0x200,
  fast_commit: 0x400,
  stable_inodes: 0x800,
  orphan_file: 0x1000,
} as const

export const INCOMPAT = {
  compression: 0x1,
  filetype: 0x2,
  needs_recovery: 0x4,
  journal_dev: 0x8,
  meta_bg: 0x10,
  extent: 0x40,
  '64bit': 0x80,
  mmp: 0x100,
  flex_bg: 0x200,
  ea_inode: 0x400,
  dirdata: 0x1000,
  metadata_csum_seed: 0x2000,
  large_dir: 0x4000,
  inline_data: 0x8000,
  encrypt: 0x10000,
  casefold: 0x20000,
} as const

export const RO_COMPAT = {
  sparse_super: 0x1,
  large_file: 0x2,
  huge_file: 0x8,
  uninit_bg: 0x10,
  dir_nlink: 0x20,
  extra_isize: 0x40,
  snapshot: 0x80,
  quota: 0x100,
  bigalloc: 0x200,
  metadata_csum: 0x400,
  replica: 0x800,
  read_only: 0x1000,
  project: 0x2000,
  shared_blocks: 0x4000,
  verity: 0x8000,
  orphan_present: 0x10000,
} as const

const TABLES: ReadonlyArray<[FeatureKind, Readonly<Record<string, number>>, string]> = [
  ['compat', COMPAT, 'C'],
  ['incompat', INCOMPAT, 'I'],
  ['ro_compat', RO_COMPAT, 'R'],
]

function tableOf(kind: FeatureKind): [Readonly<Record<string, number>>, string] {
  return kind === 'compat' ? [COMPAT, 'C'] : kind === 'incompat' ? [INCOMPAT, 'I'] : [RO_COMPAT, 'R']
}

/** The three feature words of a superblock. */
export interface FeatureWords {
  featureCompat: number
  featureIncompat: number
  featureRoCompat: number
}

function wordOf(sb: FeatureWords, kind: FeatureKind): number {
  return kind === 'compat' ? sb.featureCompat : kind === 'incompat' ? sb.featureIncompat : sb.featureRoCompat
}

/** Names of the bits set in one word; a bit without a name is FEATURE_<C|I|R><bit>, as e2p prints it. */
function namesIn(kind: FeatureKind, word: number): string[] {
  const [table, letter] = tableOf(kind)
  const out: string[] = []
  for (let bit = 0; bit < 32; bit++) {
    const mask = 2 ** bit
    if (Math.floor(word / mask) % 2 === 0) continue
    const name = Object.keys(table).find((n) => table[n] === mask)
    out.push(name ?? `FEATURE_${letter}${bit}`)
  }
  return out
}

/** Every feature enabled, compat then incompat then ro_compat, in bit order. */
export function featureNames(sb: FeatureWords): string[] {
  return TABLES.flatMap(([kind]) => namesIn(kind, wordOf(sb, kind)))
}

export function hasFeature(sb: FeatureWords, kind: 'compat', name: keyof typeof COMPAT): boolean
export function hasFeature(sb: FeatureWords, kind: 'incompat', name: keyof typeof INCOMPAT): boolean
export function hasFeature(sb: FeatureWords, kind: 'ro_compat', name: keyof typeof RO_COMPAT): boolean
export function hasFeature(sb: FeatureWords, kind: FeatureKind, name: string): boolean {
  const [table] = tableOf(kind)
  const mask = table[name] ?? 0
  return (wordOf(sb, kind) & mask) !== 0
}

/**
 * What the engine implements, read and write: the features mkfs.ext4 enables
 * by default on Debian 12 (e2fsprogs 1.47.0, /etc/mke2fs.conf).
 */
export const IMPLEMENTED: ReadonlySet<string> = new Set([
  'has_journal', 'ext_attr', 'resize_inode', 'dir_index', 'filetype', 'extent', '64bit', 'flex_bg',
  'sparse_super', 'large_file', 'huge_file', 'dir_nlink', 'extra_isize', 'metadata_csum',
])

/**
 * Incompat features that change nothing the read-only walker looks at: it may
 * open such an image for reading (it verifies checksums only when present, reads no
 * xattrs, and scans directories linearly, so large_dir's third level is moot).
 */
const READABLE_INCOMPAT: ReadonlySet<string> = new Set([
  'filetype', 'extent', '64bit', 'flex_bg', 'mmp', 'ea_inode', 'metadata_csum_seed', 'large_dir',
])

/**
 * Enabled features the engine does not implement, by name: the image must be
 * refused read-write. needs_recovery is a state, not a feature, and is
 * reported apart (EXT4_NEEDS_RECOVERY).
 */
export function unsupportedFeatures(sb: FeatureWords): string[] {
  return featureNames(sb).filter((n) => n !== 'needs_recovery' && !IMPLEMENTED.has(n))
}

/** Enabled incompat features that forbid even reading with this walker. */
export function unreadableFeatures(sb: FeatureWords): string[] {
  return namesIn('incompat', sb.featureIncompat).filter((n) => n !== 'needs_recovery' && !READABLE_INCOMPAT.has(n))
}
