/*
 * The journal check (fsck/journal-check.ts) against e2fsck -fn: each damage to the jbd2 superblock
 * or the journal inode made on purpose, then random bytes written over the journal superblock (the
 * CI failure of session 28: byte 0x3b→0x9d in its magic, which e2fsck refuses and we had called
 * clean). Every case: the same verdict as e2fsck -fn, and ours names the code.
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { JOURNAL_SUPERBLOCK_CHECKSUM_OFFSET, journalSuperblockCsum } from '../../../vfs/engine/jbd2/superblock.ts'
import { mkfs, scratch, seededBytes, sh } from './format-helpers.ts'
import { bmap, debugfs, e2fsck, e2fsckFinds, fsckImage, MKFS_FEATURES } from './fsck-helpers.ts'
import { codes, repairFile } from './fsck-repair-helpers.ts'

t.setTimeout(120_000)
const BS = 4096
const dir = scratch(t, 'fsck-journal')
const base = path.join(dir, 'base.img')
mkfs(base, 8 << 20, ['-b', String(BS), ...MKFS_FEATURES])
const jsb = bmap(base, '<8>', 0) * BS
const image = path.join(dir, 'case.img')

/** Rewrite big-endian fields of the journal superblock; with csum, recompute s_checksum afterwards. */
function patchSuper(fields: ReadonlyArray<readonly [number, 'u32' | 'u8', number]>, csum = false): void {
  const fd = fs.openSync(image, 'r+')
  const raw = Buffer.alloc(1024)
  fs.readSync(fd, raw, 0, 1024, jsb)
  for (const [off, kind, v] of fields) {
    if (kind === 'u8') raw.writeUInt8(v, off)
    else raw.writeUInt32BE(v >>> 0, off)
  }
  if (csum) raw.writeUInt32BE(journalSuperblockCsum(raw), JOURNAL_SUPERBLOCK_CHECKSUM_OFFSET)
  fs.writeSync(fd, raw, 0, 1024, jsb)
  fs.closeSync(fd)
}

const INCOMPAT = 0x28
const V3 = 0x10
interface Case {
  name: string
  /** The code ours must report; undefined: both must find the image clean. */
  code?: string
  inject(): void
}
const CASES: Case[] = [
  { name: 'magic 0xc03b3998 → 0x9d3b3998 (the CI failure)', code: 'JOURNAL_BAD_MAGIC', inject: () => { patchSuper([[0, 'u32', 0x9d3b3998]]) } },
  { name: 'block type 2 (a commit block)', code: 'JOURNAL_BAD_SUPER', inject: () => { patchSuper([[4, 'u32', 2]]) } },
  { name: 'block type 7 (unknown version)', code: 'JOURNAL_UNSUPPORTED_VERSION', inject: () => { patchSuper([[4, 'u32', 7]]) } },
  { name: 'block type 3 (v1): its v2 fields are ignored', inject: () => { patchSuper([[4, 'u32', 3], [INCOMPAT, 'u32', 0x40]]) } },
  { name: 's_blocksize 1024 on a 4 KiB file system', code: 'JOURNAL_BAD_BLOCK_SIZE', inject: () => { patchSuper([[0xc, 'u32', 1024]]) } },
  { name: 's_maxlen one past the inode', code: 'JOURNAL_TOO_SHORT', inject: () => { patchSuper([[0x10, 'u32', 1025]]) } },
  { name: 's_maxlen under the inode (accepted)', inject: () => { patchSuper([[0x10, 'u32', 10]]) } },
  { name: 'csum v3 with a wrong checksum', code: 'JOURNAL_BAD_CSUM', inject: () => { patchSuper([[INCOMPAT, 'u32', V3], [0x50, 'u8', 4], [0xfc, 'u32', 0x1234]]) } },
  { name: 'csum v3 with a right checksum', inject: () => { patchSuper([[INCOMPAT, 'u32', V3], [0x50, 'u8', 4]], true) } },
  { name: 'csum v3 with checksum type crc32', code: 'JOURNAL_BAD_SUPER', inject: () => { patchSuper([[INCOMPAT, 'u32', V3], [0x50, 'u8', 1]], true) } },
  { name: 'csum v2 and v3 together', code: 'JOURNAL_BAD_SUPER', inject: () => { patchSuper([[INCOMPAT, 'u32', 0x18], [0x50, 'u8', 4]], true) } },
  { name: 'csum v3 with v1 commit checksums', code: 'JOURNAL_BAD_SUPER', inject: () => { patchSuper([[INCOMPAT, 'u32', V3], [0x50, 'u8', 4], [0x24, 'u32', 1]], true) } },
  { name: 'unknown incompat feature 0x40', code: 'JOURNAL_UNKNOWN_FEATURE', inject: () => { patchSuper([[INCOMPAT, 'u32', 0x40]]) } },
  { name: 'unknown ro_compat feature', code: 'JOURNAL_UNKNOWN_FEATURE', inject: () => { patchSuper([[0x2c, 'u32', 1]]) } },
  { name: 'fast commit leaving under 1024 blocks', code: 'JOURNAL_BAD_FC_BLOCKS', inject: () => { patchSuper([[INCOMPAT, 'u32', 0x20]]) } },
  { name: 's_nr_users 2 on an internal journal', code: 'JOURNAL_MULTIPLE_USERS', inject: () => { patchSuper([[0x40, 'u32', 2]]) } },
  { name: 's_start set, needs_recovery clear', code: 'JOURNAL_START_WITHOUT_RECOVERY', inject: () => { patchSuper([[0x1c, 'u32', 5]]) } },
  { name: 's_errno set', code: 'JOURNAL_ERRNO_SET', inject: () => { patchSuper([[0x20, 'u32', -5]]) } },
  { name: 'journal inode a directory', code: 'JOURNAL_BAD_INODE', inject: () => void debugfs(image, 'sif <8> mode 040600') },
  { name: 'journal inode without links', code: 'JOURNAL_BAD_INODE', inject: () => void debugfs(image, 'sif <8> links_count 0') },
  { name: 'journal inode under 1024 blocks', code: 'JOURNAL_BAD_INODE', inject: () => void debugfs(image, 'sif <8> size 4096') },
  { name: 'journal inode longer than its blocks', code: 'JOURNAL_BAD_INODE', inject: () => void debugfs(image, 'sif <8> size 8388608') },
  { name: 'journal inode without EXTENTS_FL', code: 'JOURNAL_BAD_INODE', inject: () => void debugfs(image, 'sif <8> flags 0') },
  { name: "journal inode's i_blocks", code: 'INODE_BAD_I_BLOCKS', inject: () => void debugfs(image, 'sif <8> blocks 100') },
  { name: 's_journal_inum 0 with has_journal', code: 'JOURNAL_BAD_INODE', inject: () => void debugfs(image, 'ssv journal_inum 0') },
  { name: 'has_journal clear, journal inode set', code: 'JOURNAL_HAS_JOURNAL_CLEAR', inject: () => void debugfs(image, 'feature -has_journal') },
  {
    name: 'no journal at all, inode 8 still full',
    code: 'JOURNAL_INODE_NOT_CLEAR',
    inject: () => {
      debugfs(image, 'feature -has_journal')
      debugfs(image, 'ssv journal_inum 0')
    },
  },
  { name: 'an external journal uuid', code: 'JOURNAL_EXTERNAL', inject: () => void debugfs(image, 'ssv journal_uuid 12345678-1234-1234-1234-123456789abc') },
  { name: 'reserved inode 9 with a mode', code: 'RESERVED_BAD_MODE', inject: () => void debugfs(image, 'sif <9> mode 0100600') },
  { name: 'reserved inode with a low dtime', code: 'INODE_LOW_DTIME', inject: () => void debugfs(image, 'sif <7> dtime 5') },
]

for (const c of CASES) {
  t.test(c.name, async (t) => {
    sh('cp', ['--sparse=always', base, image])
    c.inject()
    const theirs = e2fsckFinds(image)
    const ours = await fsckImage(image)
    const codes = [...new Set(ours.problems.filter((p) => p.severity === 'error').map((p) => p.code))]
    t.equal(theirs, c.code !== undefined, `e2fsck -fn ${c.code === undefined ? 'clean' : 'finds it'}`)
    t.equal(ours.clean, !theirs, `ours agrees (${codes.join(' ') || 'clean'})`)
    if (c.code !== undefined) t.ok(codes.includes(c.code), `ours reports ${c.code}`, { codes })
  })
}

t.test('random bytes over the journal superblock: the same verdict', async (t) => {
  const seed = Number(process.env.FSCK_SEED ?? Date.now() % 2 ** 31)
  const rounds = Number(process.env.FSCK_ROUNDS ?? 30)
  t.comment(`seed ${seed} (FSCK_SEED=${seed} repeats it)`)
  const rand = seededBytes(seed)
  const original = fs.readFileSync(base)
  let agreed = 0
  for (let round = 0; round < rounds; round++) {
    const bytes = Buffer.from(original)
    const r = rand(8)
    // One to four bytes within the 1024 that e2fsck reads, most of them in the first 0x60 (the fields it judges).
    const n = 1 + ((r[0] ?? 0) % 4)
    const hits: string[] = []
    for (let k = 0; k < n; k++) {
      const wide = ((r[1 + k] ?? 0) & 1) === 0
      const off = wide ? (rand(2).readUInt16LE(0) % 1024) : ((r[1 + k] ?? 0) % 0x60)
      const v = r[5 + (k % 3)] ?? 0
      bytes[jsb + off] = v
      hits.push(`0x${off.toString(16)}=0x${v.toString(16)}`)
    }
    fs.writeFileSync(image, bytes)
    const theirs = e2fsckFinds(image)
    const ours = await fsckImage(image)
    if (theirs === !ours.clean) agreed++
    else t.fail(`round ${round}: ${hits.join(' ')}: e2fsck -fn ${theirs ? 'found' : 'clean'}, ours ${ours.clean ? 'clean' : ours.problems.map((p) => p.code).join(' ')}`)
  }
  t.equal(agreed, rounds, 'every verdict the same as e2fsck -fn')
})

t.test('repair rewrites a corrupt journal superblock; e2fsck -fn is clean after', async (t) => {
  for (const [name, fields, code] of [
    ['magic', [[0, 'u32', 0x9d3b3998]], 'JOURNAL_BAD_MAGIC'],
    ['block size', [[0xc, 'u32', 1024]], 'JOURNAL_BAD_BLOCK_SIZE'],
    ['s_start without needs_recovery', [[0x1c, 'u32', 5]], 'JOURNAL_START_WITHOUT_RECOVERY'],
  ] as const) {
    sh('cp', ['--sparse=always', base, image])
    patchSuper(fields)
    const r = await repairFile(image)
    t.ok(codes(r, 'fixed').includes(code), `${name}: ${code} fixed`, { fixedCodes: codes(r, 'fixed'), leftCodes: codes(r, 'left') })
    t.equal(r.exitCode, 1, `${name}: exit 1 (corrected)`)
    const after = e2fsck(image)
    t.equal(after.code, 0, `${name}: e2fsck -fn clean afterwards${after.code === 0 ? '' : `\n${after.out}`}`)
    t.equal((await fsckImage(image)).clean, true, `${name}: ours clean afterwards`)
  }
})

t.test('repair refuses an unusable journal inode, naming it', async (t) => {
  sh('cp', ['--sparse=always', base, image])
  debugfs(image, 'sif <8> links_count 0')
  const r = await repairFile(image)
  const refusal = r.repairs.find((x) => x.code === 'JOURNAL_BAD_INODE' && x.outcome === 'left')
  t.ok(refusal, 'JOURNAL_BAD_INODE left', { repairs: r.repairs })
  t.match(refusal?.message ?? '', /the journal inode is unusable: not repaired: e2fsck -fy removes and recreates the journal/, 'the message says why and what to do')
  t.equal(r.exitCode, 4, 'exit 4 (left uncorrected)')
  t.equal(e2fsckFinds(image), true, 'e2fsck -fn still finds it (nothing was written to the journal)')
})
