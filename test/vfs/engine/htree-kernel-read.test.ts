/*
 * Reading kernel-made htree directories (needs root and loop devices; skips,
 * saying why, without them). The kernel fills a 50,000-entry directory with
 * random names (bytes >= 0x80 included), on 4 KiB blocks (one index level)
 * and 1 KiB blocks (two levels). Our lookup must find every name with the
 * right inode, reading only the index path and the leaf (counted), answer
 * ENOENT for absent names, and our READDIR must list every entry exactly once
 * across resumes with the very cookies the kernel gives (d_off).
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { VfsError } from '../../../vfs/errors.ts'
import { decodeDxRoot } from '../../../vfs/engine/format/dirent.ts'
import { FormatError } from '../../../vfs/engine/format/errors.ts'
import { INODE_FLAGS } from '../../../vfs/engine/format/inode.ts'
import { Ext4Image } from '../../../vfs/engine/reader/image.ts'
import { FileReadAt } from '../../../vfs/engine/reader/read-at.ts'
import { dxRootLimit } from '../../../vfs/engine/reader/htree-lookup.ts'
import { HTREE_EOF_64BIT, HTREE_START, htreeReadDir } from '../../../vfs/engine/reader/htree-readdir.ts'
import { NO_VERIFY } from '../../../vfs/engine/reader/verify.ts'
import { mkfs, scratch, seededBytes, whyNoLoopMount, withMount } from './format-helpers.ts'
import { CountingReadAt, kernelDoffs, randomNames, SyncFileReadAt } from './htree-helpers.ts'

const ENTRIES = 50_000
// Tens of thousands of names through the kernel, e2fsck and our code: about a minute on an idle machine, several on a loaded one.
t.setTimeout(900_000)
const why = whyNoLoopMount()

for (const bs of (process.env.HTREE_BS ?? '4096,1024').split(',').map(Number)) {
  t.test(`kernel-made ${ENTRIES}-entry htree directory, ${bs}-byte blocks: lookup, ENOENT, readdir cookies`, why === undefined ? {} : { skip: why }, async (t) => {
    const seed = Number(process.env.HTREE_SEED ?? Date.now() % 2 ** 31)
    t.comment(`seed ${seed} (HTREE_SEED=${seed} to repeat)`)
    const rand = seededBytes(seed)
    const t0 = Date.now()
    const lap = (what: string): void => {
      t.comment(`${what}: ${Date.now() - t0} ms`)
    }
    const dir = scratch(t, 'htree-read')
    const image = path.join(dir, 'img')
    mkfs(image, 96 << 20, ['-b', String(bs), '-O', 'metadata_csum,dir_index,extent,64bit', '-N', '4096'])
    const names = randomNames(rand, ENTRIES)
    const absent = randomNames(rand, 2000, 'absent-')
    const inos = new Map<string, number>()
    const kernel = await withMount(t, image, (mnt) => {
      const big = path.join(mnt, 'big')
      fs.mkdirSync(big)
      const target = path.join(mnt, 'target')
      fs.writeFileSync(target, 'x')
      const targetIno = fs.statSync(target).ino
      for (const [i, n] of names.entries()) {
        const p = Buffer.concat([Buffer.from(big + '/'), n])
        // Every 1000th a file of its own, so a wrong match shows as a wrong inode.
        if (i % 1000 === 0) fs.closeSync(fs.openSync(p, 'w'))
        else fs.linkSync(target, p)
        inos.set(n.toString('hex'), i % 1000 === 0 ? fs.statSync(p).ino : targetIno)
      }
      return kernelDoffs(big)
    })
    lap('filled')
    t.equal(kernel.length, ENTRIES + 2, 'the kernel lists every name and . and ..')

    const file = new SyncFileReadAt(image)
    t.teardown(() => {
      file.close()
    })
    const counting = new CountingReadAt(file)
    const img = await Ext4Image.open(counting)
    const ino = await img.lookup('big')
    const inode = await img.readInode(ino)
    t.ok((inode.flags & INODE_FLAGS.INDEX) !== 0, 'the kernel made it indexed')
    const dx = img.dxDir(ino, inode)
    const root = decodeDxRoot(await dx.block(0, 'dx-block'), bs, false, 'root')
    const levels = root.indirectLevels + 1
    t.comment(`${dx.blocks} blocks, ${levels} index level(s)`)
    if (bs === 1024) t.equal(root.indirectLevels, 1, '1 KiB blocks give two index levels')

    // Lookup: every name, its inode, at most the index path + leaf (+1 for a collision leaf) per name.
    let wrong = 0
    let maxReads = 0
    const before = counting.reads
    for (const n of names) {
      const r0 = counting.reads
      const hit = await img.findEntry(ino, inode, n)
      maxReads = Math.max(maxReads, counting.reads - r0)
      if (hit?.inode !== inos.get(n.toString('hex'))) wrong++
    }
    t.equal(wrong, 0, `all ${ENTRIES} names found with their inode`)
    t.ok(maxReads <= levels + 2, `at most ${levels + 2} block reads per lookup (saw ${maxReads}, the directory has ${dx.blocks} blocks)`)
    t.ok(counting.reads - before <= ENTRIES * (levels + 1) + 100, `average reads per lookup ${((counting.reads - before) / ENTRIES).toFixed(2)}`)
    lap('lookups')
    let found = 0
    for (const n of absent) if ((await img.findEntry(ino, inode, n)) !== undefined) found++
    t.equal(found, 0, `${absent.length} absent names are absent`)
    await t.rejects(img.lookup('big/absent-name'), new VfsError('ENOENT', 'absent-name: not found'))
    const ascii = names.find((n) => /^[\x21-\x7e]+$/.test(n.toString('latin1')))
    if (ascii !== undefined) t.equal(await img.lookup(`big/${ascii.toString('latin1')}`), inos.get(ascii.toString('hex')), 'a path lookup through the htree')
    t.equal((await img.findEntry(ino, inode, Buffer.from('..')))?.inode, 2, '".." from the root block')

    lap('absent')
    // READDIR: pages of 97 from the start, each resumed at the last cookie.
    const doff = new Map(kernel.map((k) => [k.name, k.doff]))
    const seen = new Map<string, number>()
    let cookie = HTREE_START
    let pages = 0
    let cookieMismatch = 0
    for (;;) {
      const page = await htreeReadDir(dx, cookie, 97)
      pages++
      for (const e of page.entries) {
        const key = e.name.toString('hex')
        seen.set(key, (seen.get(key) ?? 0) + 1)
        if (doff.get(key) !== e.cookie && cookieMismatch++ < 3) t.fail(`${key}: our cookie ${e.cookie}, kernel d_off ${doff.get(key)}`)
      }
      if (page.eof) break
      const last = page.entries[page.entries.length - 1]
      if (last === undefined) break
      cookie = last.cookie
    }
    lap('readdir')
    t.equal(cookieMismatch, 0, 'every cookie equals the kernel d_off')
    t.equal(seen.size, ENTRIES + 2, `every entry listed (${pages} pages)`)
    t.equal([...seen.values()].filter((c) => c !== 1).length, 0, 'each exactly once')
    const linear = await img.readDir(ino, inode)
    t.same(new Set(linear.map((d) => d.name.toString('hex'))), new Set(seen.keys()), 'the same names as a linear scan')
    t.same(await htreeReadDir(dx, HTREE_EOF_64BIT, 10), { entries: [], eof: true }, 'EOF cookie: nothing more')

    // A damaged index block: a FormatError with a code, not a crash (checked without checksums, so the structure check speaks).
    const raw = fs.readFileSync(image)
    const m = await img.mapBlock(ino, inode, 0)
    const rootAt = ((m.extent?.start ?? 0) * bs)
    raw.writeUInt16LE(0xffff, rootAt + 0x20) // limit
    const bad = path.join(dir, 'bad')
    fs.writeFileSync(bad, raw)
    const badDev = await FileReadAt.open(bad)
    t.teardown(() => badDev.close())
    const badImg = await Ext4Image.open(badDev, { verifier: NO_VERIFY })
    const limit = dxRootLimit(bs, true)
    await t.rejects(badImg.findEntry(ino, inode, names[0] ?? Buffer.from('x')), new FormatError('EXT4_CORRUPT', `directory ${ino} htree root: limit 65535, expected ${limit}`), 'a bad limit is corrupt')
    const csumImg = await Ext4Image.open(badDev)
    await t.rejects(csumImg.findEntry(ino, inode, names[0] ?? Buffer.from('x')), { code: 'EXT4_BAD_CHECKSUM', message: /^dx-block of inode \d+ in block \d+: no checksum \(htree limit 65535/ }, 'with checksums it is caught first')
  })
}
