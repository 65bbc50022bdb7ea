/*
 * tsnfs fsck --repair, pass 2: an entry naming a freed inode is removed (and
 * the inode's bitmap bit and blocks freed by pass 5), an entry's wrong file
 * type is set from its inode, a leaf whose checksum alone is wrong gets it
 * rewritten; then e2fsck -fn clean, our check clean, and every file not
 * involved reads as before. A damaged htree index, or a leaf of an indexed
 * directory whose checksum fails, clears the index: the directory is linear
 * afterwards with every name kept. A leaf whose records stop parsing, or that
 * holds a bad name, is rebuilt from its readable entries and the files it no
 * longer names go to lost+found; damage in '.' or '..' is left (exit 4,
 * nothing written).
 */
import t from 'tap'
import type { Test } from 'tap'
import fs from 'node:fs'
import { scratch } from './format-helpers.ts'
import { bmap, debugfs, e2fsck, flipBit, fsckImage, patchDirEntry } from './fsck-helpers.ts'
import { buildRepairBase, codes, copyImage, dumpImage, dumpLost, repairFile, tell } from './fsck-repair-helpers.ts'

t.setTimeout(120_000)
const seed = Number(process.env.FSCK_SEED ?? Date.now() % 2 ** 31)
t.comment(`seed ${seed} (FSCK_SEED=${seed} repeats it)`)
const dir = scratch(t, 'fsck-repair-dirs')
const base = buildRepairBase(dir, seed)
const baseDump = await dumpImage(base)
const BS = 1024

const copy = (name: string): string => copyImage(dir, base, name)

async function judged(t: Test, image: string): Promise<void> {
  const e2 = e2fsck(image)
  t.equal(e2.code, 0, `e2fsck -fn clean${e2.code === 0 ? '' : `\n${e2.out}`}`)
  t.equal((await fsckImage(image)).clean, true, 'our check clean')
}

await t.test('an entry naming a freed inode: removed, the inode and its blocks freed', async (t) => {
  const image = copy('clri.img')
  debugfs(image, 'clri /a/b/c/f.txt')
  const r = await repairFile(image)
  tell(t, r)
  t.equal(r.exitCode, 1)
  t.strictSame(codes(r, 'fixed'), ['DIRENT_REMOVED', 'GROUP_REWRITTEN', 'SUPER_COUNTS_REWRITTEN'])
  t.match(r.repairs[0]?.message, /^directory \d+: entry 'f.txt' removed \(inode \d+ not in use\)$/)
  await judged(t, image)
  const want = { ...baseDump }
  delete want['/a/b/c/f.txt']
  t.strictSame(await dumpImage(image), want, 'every other file reads as before')
  fs.rmSync(image)
})

await t.test("an entry's wrong file type: set from the inode", async (t) => {
  const image = copy('type.img')
  await patchDirEntry(image, '/a/b/c', 'f.txt', (b, off) => void b.writeUInt8(2, off + 7))
  const r = await repairFile(image)
  tell(t, r)
  t.equal(r.exitCode, 1)
  t.strictSame(codes(r, 'fixed'), ['DIRENT_FILETYPE_SET'])
  t.match(r.repairs[0]?.message, /entry 'f.txt' file type 2 → 1$/)
  await judged(t, image)
  t.strictSame(await dumpImage(image), baseDump, 'every file reads as before')
  fs.rmSync(image)
})

// e2fsck judges the file types of '.' and '..' as any entry's (a random-damage round found '.' of type 170 passed).
await t.test("'.' and '..' with wrong file types: set to a directory's", async (t) => {
  const image = copy('dots.img')
  await patchDirEntry(image, '/a/b/c', '.', (b, off) => void b.writeUInt8(0xaa, off + 7))
  await patchDirEntry(image, '/a/b/c', '..', (b, off) => void b.writeUInt8(1, off + 7))
  t.not(e2fsck(image).code, 0, 'e2fsck -fn finds it')
  const found = (await fsckImage(image)).problems.map((p) => p.code)
  t.strictSame(found, ['DIRENT_BAD_FILETYPE', 'DIRENT_BAD_FILETYPE'], 'our check finds both')
  const r = await repairFile(image)
  tell(t, r)
  t.equal(r.exitCode, 1)
  t.strictSame(codes(r, 'fixed'), ['DIRENT_FILETYPE_SET', 'DIRENT_FILETYPE_SET'])
  t.strictSame(r.repairs.map((x) => x.message.replace(/^directory \d+: /, '')), ["entry '.' file type 170 → 2", "entry '..' file type 1 → 2"])
  await judged(t, image)
  t.strictSame(await dumpImage(image), baseDump, 'every file reads as before')
  fs.rmSync(image)
})

await t.test('a leaf whose checksum alone is wrong: the sum rewritten', async (t) => {
  const image = copy('csum.img')
  // Four bytes before the tail: slack of the leaf's last record, covered by the checksum only.
  flipBit(image, bmap(image, '/a/b/c', 0) * BS + BS - 12 - 4, 5)
  t.ok((await fsckImage(image)).problems.some((p) => p.code === 'DIR_CSUM'), 'our check finds DIR_CSUM')
  const r = await repairFile(image)
  tell(t, r)
  t.equal(r.exitCode, 1)
  t.strictSame(codes(r, 'fixed'), ['DIR_CSUM_SET'])
  await judged(t, image)
  t.strictSame(await dumpImage(image), baseDump, 'every file reads as before')
  fs.rmSync(image)
})

await t.test('an htree leaf whose checksum fails: the index cleared (linear now), the sum rewritten, every name kept', async (t) => {
  const image = copy('htree.img')
  flipBit(image, bmap(image, '/many', 1) * BS + BS - 12 - 4, 5)
  const r = await repairFile(image)
  tell(t, r)
  t.equal(r.exitCode, 1)
  t.strictSame(codes(r, 'fixed'), ['HTREE_CLEARED', 'DIR_CSUM_SET'])
  t.match(r.repairs[0]?.message, /^directory \d+: htree index cleared \(DIR_CSUM\); now linear, every leaf kept, 0 index blocks emptied$/)
  await judged(t, image)
  t.notMatch(debugfs(image, 'stat /many'), /Flags: 0x\w*1\w{3}\b/, 'INDEX_FL (0x1000) cleared')
  t.strictSame(await dumpImage(image), baseDump, 'every file reads as before, all 200 names of /many included')
  fs.rmSync(image)
})

await t.test("a damaged htree root (a flipped bit in its entries): the index cleared, every name kept", async (t) => {
  const image = copy('dxroot.img')
  // The root's first dx entry after the header (count/limit at 0x20, block at 0x24): its block number gets a high bit.
  flipBit(image, bmap(image, '/many', 0) * BS + 0x24 + 3, 6)
  const found = (await fsckImage(image)).problems.map((p) => p.code)
  t.ok(found.some((c) => c.startsWith('HTREE_') || c === 'DX_CSUM' || c === 'DIR_CSUM'), `our check finds it: ${found.join(' ')}`)
  const r = await repairFile(image)
  tell(t, r)
  t.equal(r.exitCode, 1)
  t.equal(codes(r, 'fixed')[0], 'HTREE_CLEARED')
  await judged(t, image)
  t.strictSame(await dumpImage(image), baseDump, 'every file reads as before, all 200 names of /many included')
  fs.rmSync(image)
})

await t.test('a flipped bit in the htree root caught by its checksum alone: the index cleared, every name kept', async (t) => {
  const image = copy('dxcsum.img')
  // dt_reserved of the root's dx tail (its last 8 bytes: reserved, then the sum): read by nothing but the checksum.
  flipBit(image, bmap(image, '/many', 0) * BS + BS - 8 + 1, 1)
  t.strictSame((await fsckImage(image)).problems.map((p) => p.code), ['HTREE_CSUM'], 'our check finds the checksum only')
  const r = await repairFile(image)
  tell(t, r)
  t.equal(r.exitCode, 1)
  t.strictSame(codes(r, 'fixed'), ['HTREE_CLEARED'])
  await judged(t, image)
  t.strictSame(await dumpImage(image), baseDump, 'every file reads as before, all 200 names of /many included')
  fs.rmSync(image)
})

/** name's file gone from where it was, in /lost+found as '#ino' (the salvage dropped its entry, the reconnect step linked it there), every other file as before. */
async function movedToLostFound(t: Test, image: string, name: string): Promise<void> {
  const content = baseDump[name]
  const want = Object.fromEntries(Object.entries(baseDump).filter(([k]) => k !== name))
  t.strictSame(await dumpImage(image), want, 'every other file reads as before')
  const lost = (await dumpLost(image)).tree
  const moved = Object.keys(lost)
  t.equal(moved.length, 1, `one file in lost+found: ${moved.join(' ')}`)
  t.match(moved[0], /^\/#\d+$/, 'named #ino')
  t.strictSame(lost[moved[0] ?? ''], content, `${name}'s content and attributes kept`)
}

await t.test("a leaf whose records stop parsing: salvaged from the readable ones, the lost name's file in lost+found", async (t) => {
  const image = copy('reclen.img')
  await patchDirEntry(image, '/a/b/c', 'f.txt', (b, off) => void b.writeUInt16LE(10, off + 4))
  const r = await repairFile(image)
  tell(t, r)
  t.equal(r.exitCode, 1)
  t.equal(codes(r, 'fixed')[0], 'DIR_SALVAGED')
  t.match(r.repairs[0]?.message, /^directory \d+ block \d+: rebuilt from its 2 readable entries \(record at \d+ has rec_len \d+, name_len 5: the \d+ bytes from it dropped\)$/)
  t.ok(codes(r, 'fixed').includes('RECONNECTED'), `reconnected: ${codes(r, 'fixed').join(' ')}`)
  await judged(t, image)
  await movedToLostFound(t, image, '/a/b/c/f.txt')
  fs.rmSync(image)
})

await t.test("an entry with a bad name ('/' in it): dropped, its file in lost+found", async (t) => {
  const image = copy('badname.img')
  await patchDirEntry(image, '/a/b/c', 'f.txt', (b, off) => void b.writeUInt8(0x2f, off + 8 + 1))
  t.ok((await fsckImage(image)).problems.some((p) => p.code === 'DIRENT_BAD_NAME'), 'our check finds DIRENT_BAD_NAME')
  const r = await repairFile(image)
  tell(t, r)
  t.equal(r.exitCode, 1)
  t.strictSame(codes(r, 'fixed').slice(0, 2), ['DIRENT_REMOVED', 'DIR_SALVAGED'])
  t.match(r.repairs[0]?.message, /entry 'f\/txt' removed \(inode \d+ a bad name\)$/)
  await judged(t, image)
  await movedToLostFound(t, image, '/a/b/c/f.txt')
  fs.rmSync(image)
})

await t.test('damage in \'.\' or \'..\': left, exit 4, not a byte written', async (t) => {
  const image = copy('dotdot.img')
  // '..' is the second record of block 0, at offset 12: its rec_len (bytes 16..17) made 10.
  const at = bmap(image, '/a/b/c', 0) * BS + 12 + 4
  const raw = fs.readFileSync(image)
  raw.writeUInt16LE(10, at)
  fs.writeFileSync(image, raw)
  const bytes = fs.readFileSync(image)
  const r = await repairFile(image)
  tell(t, r)
  t.equal(r.exitCode, 4)
  t.strictSame(codes(r, 'fixed'), [])
  t.ok(r.after.problems.some((p) => p.code === 'DIRENT_BAD_REC_LEN'), 'the check after still finds it')
  t.ok(fs.readFileSync(image).equals(bytes), 'the image is byte-identical')
  fs.rmSync(image)
})

await t.test('a two-level htree (interior index blocks) with a damaged root: cleared, its index blocks emptied, all 6,000 names kept', async (t) => {
  const { spawnSync } = await import('node:child_process')
  const path = await import('node:path')
  const { mkfs } = await import('./format-helpers.ts')
  const { MKFS_FEATURES } = await import('./fsck-helpers.ts')
  const tree = path.join(dir, 'deep-tree')
  fs.mkdirSync(path.join(tree, 'wide'), { recursive: true })
  const names = Array.from({ length: 6000 }, (_, i) => `name-with-some-length-${i}`)
  for (const n of names) fs.writeFileSync(path.join(tree, 'wide', n), '')
  const image = path.join(dir, 'deep.img')
  mkfs(image, 16 << 20, ['-b', '1024', '-N', '8192', ...MKFS_FEATURES, '-d', tree])
  const d = spawnSync('e2fsck', ['-fyD', image], { encoding: 'utf8' })
  t.ok(d.status === 0 || d.status === 1, 'e2fsck -fyD indexed it')
  t.match(debugfs(image, 'htree_dump /wide', false), /Number of entries \(count\): \d+[\s\S]*Entry #0: Hash 0x00000000, block \d+[\s\S]*Entry #0: Hash 0x00000000, block \d+/, 'two levels: the root names interior blocks')
  flipBit(image, bmap(image, '/wide', 0) * BS + BS - 8 + 1, 1)
  const r = await repairFile(image)
  tell(t, r)
  t.equal(r.exitCode, 1)
  t.match(r.repairs[0]?.message, /htree index cleared \(HTREE_CSUM\); now linear, every leaf kept, [1-9]\d* index blocks? emptied$/)
  await judged(t, image)
  // Listed through the engine (a dump would look every name up: a scan of the now linear directory each).
  const { openEngine } = await import('../../../vfs/engine/fs/assemble.ts')
  const e = await openEngine(image, { readOnly: true })
  const listed: string[] = []
  try {
    const { ref: wide } = await e.lookup(e.root(), Buffer.from('wide'))
    for (let cookie = 0n; ;) {
      const page = await e.readdir(wide, cookie, 500)
      for (const x of page.entries) {
        cookie = x.cookie
        const n = x.name.toString()
        if (n !== '.' && n !== '..') listed.push(n)
      }
      if (page.eof) break
    }
    t.equal((await e.lookup(wide, Buffer.from(names[4321] ?? ''))).attr.type, 'file', 'a name is found by a scan')
  } finally {
    await e.close()
  }
  t.strictSame(listed.sort(), [...names].sort(), 'every name is listed, once')
  fs.rmSync(image)
})
