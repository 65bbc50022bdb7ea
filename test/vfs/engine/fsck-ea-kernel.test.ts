/*
 * tsnfs fsck [--repair] on extended attribute blocks the kernel shared: ext4
 * gives files with identical attributes one block (mbcache) and counts them
 * in h_refcount. Made so, the image is clean for e2fsck -fn and for us, and
 * the repair writes nothing. With h_refcount damaged, or the block also made
 * an earlier file's data, our repair leaves an image that e2fsck -fn calls
 * clean and the kernel then serves: it reads every sharer's attribute and
 * removes one (decrementing h_refcount, which must therefore be right), and
 * e2fsck -fn is still clean after that.
 */
import t from 'tap'
import type { Test } from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { mkfs, scratch, seededBytes, withMount, whyNoLoopMount } from './format-helpers.ts'
import { aclOf, EA_BS as BS, readBlock, setRefcount } from './fsck-ea-helpers.ts'
import { debugfs, e2fsck, fsckImage, MKFS_FEATURES } from './fsck-helpers.ts'
import { codes, copyImage, repairFile, tell } from './fsck-repair-helpers.ts'
import { judgeSound } from './fsck-judge.ts'

t.setTimeout(180_000)
const SHARERS = ['f1', 'f2', 'f3']
const noLoop = whyNoLoopMount() ?? (spawnSync('python3', ['-c', 'import os; os.setxattr'], { encoding: 'utf8' }).status === 0 ? undefined : 'no python3 with os.setxattr')
if (noLoop !== undefined) t.comment(`skipping: ${noLoop}`)

/** python3's os.*xattr: node has no xattr calls. op is get (prints hex), set (value hex), or remove. */
function xattr(op: 'get' | 'set' | 'remove', file: string, value = ''): string {
  const py = {
    get: 'import os,sys; print(os.getxattr(sys.argv[1], "user.shared").hex())',
    set: 'import os,sys; os.setxattr(sys.argv[1], "user.shared", bytes.fromhex(sys.argv[2]))',
    remove: 'import os,sys; os.removexattr(sys.argv[1], "user.shared")',
  }[op]
  const r = spawnSync('python3', ['-c', py, file, value], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`xattr ${op} ${file}: ${r.stderr}`)
  return r.stdout.trim()
}

t.test('attribute blocks the kernel shared', { skip: noLoop ?? false }, async (t) => {
  const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 2 ** 31)
  t.comment(`seed ${seed} (TSNFS_SEED=${seed} repeats it)`)
  const dir = scratch(t, 'fsck-ea-kernel')
  const rand = seededBytes(seed)
  const value = rand(300).toString('hex')
  const base = path.join(dir, 'base.img')
  mkfs(base, 16 << 20, ['-b', String(BS), ...MKFS_FEATURES])
  // /d first: its inode number comes before the sharers', so it claims a block first in pass 1.
  const data = rand(700)
  await withMount(t, base, (mnt) => {
    fs.writeFileSync(path.join(mnt, 'd'), data)
    for (const f of SHARERS) {
      fs.writeFileSync(path.join(mnt, f), `${f}\n`)
      xattr('set', path.join(mnt, f), value)
    }
  })
  const EA = aclOf(base, '/f1')
  t.strictSame(SHARERS.map((f) => aclOf(base, `/${f}`)), SHARERS.map(() => EA), `the kernel shared block ${EA}`)

  /** Mount image: every sharer's attribute reads back; remove f1's (the kernel drops h_refcount by one); then e2fsck -fn clean. */
  const kernelJudges = async (t: Test, image: string): Promise<void> => {
    await withMount(t, image, (mnt) => {
      for (const f of SHARERS) t.equal(xattr('get', path.join(mnt, f)), value, `the kernel reads ${f}'s attribute`)
      xattr('remove', path.join(mnt, 'f1'))
    })
    const after = e2fsck(image)
    t.equal(after.code, 0, `after the kernel removed f1's attribute, e2fsck -fn clean${after.code === 0 ? '' : `\n${after.out}`}`)
  }

  await t.test('as the kernel made it: clean for both, the repair writes nothing', async (t) => {
    const image = copyImage(dir, base, 'made.img')
    await judgeSound(t, image)
    fs.rmSync(image)
  })

  for (const n of [1, 7]) {
    await t.test(`h_refcount ${n} for three sharers: repaired to 3, which the kernel then counts down`, async (t) => {
      const image = copyImage(dir, base, 'count.img')
      await setRefcount(image, EA, n)
      t.equal(e2fsck(image).code, 4, 'e2fsck -fn finds it')
      t.strictSame((await fsckImage(image)).problems.filter((p) => p.severity === 'error').map((p) => [p.code, p.block, p.expected]), [['XATTR_REFCOUNT', EA, 3]], 'our check: XATTR_REFCOUNT, should be 3')
      const r = await repairFile(image)
      tell(t, r)
      t.equal(r.exitCode, 1, 'exit 1')
      t.strictSame(codes(r, 'fixed'), ['XATTR_REFCOUNT_SET'], 'h_refcount set')
      t.equal(e2fsck(image).code, 0, 'e2fsck -fn clean')
      t.equal((await fsckImage(image)).clean, true, 'our check clean')
      await kernelJudges(t, image)
      fs.rmSync(image)
    })
  }

  await t.test("the shared block made /d's data too: the sharers get a copy, /d keeps its block", async (t) => {
    const image = copyImage(dir, base, 'dup.img')
    // i_block[5] is ee_start_lo of /d's one extent.
    debugfs(image, `sif /d block[5] ${EA}`)
    t.equal(e2fsck(image).code, 4, 'e2fsck -fn finds it')
    const eaBytes = readBlock(image, EA)
    const r = await repairFile(image)
    tell(t, r)
    t.equal(r.exitCode, 1, 'exit 1')
    t.ok(codes(r, 'fixed').includes('BLOCKS_CLONED'), 'cloned')
    t.strictSame(codes(r, 'left'), [], 'nothing left')
    t.equal(e2fsck(image).code, 0, 'e2fsck -fn clean')
    t.equal((await fsckImage(image)).clean, true, 'our check clean')
    const acls = SHARERS.map((f) => aclOf(image, `/${f}`))
    t.ok(acls.every((a) => a === acls[0] && a !== EA), `the sharers share the copy: ${acls.join(' ')}`)
    await withMount(t, image, (mnt) => {
      // /d is 700 bytes: what it read with the damage in place, the start of the attribute block.
      t.ok(fs.readFileSync(path.join(mnt, 'd')).equals(eaBytes.subarray(0, 700)), '/d reads the block it names, as before the repair')
    })
    await kernelJudges(t, image)
    fs.rmSync(image)
  })
})

t.test('attributes of every shape the kernel writes, 4 KiB blocks: clean for both, the repair writes nothing', { skip: noLoop ?? false }, async (t) => {
  const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 2 ** 31)
  t.comment(`seed ${seed} (TSNFS_SEED=${seed} repeats it)`)
  const dir = scratch(t, 'fsck-ea-kernel-4k')
  const image = path.join(dir, 'shapes.img')
  mkfs(image, 64 << 20, ['-b', '4096', ...MKFS_FEATURES])
  // Several entries per file, names with bytes >= 0x80 (hashed as signed chars by kernels before 6.2),
  // empty values and values up to 2000 bytes, trusted/security names, POSIX ACLs, identical sets shared.
  const py = `
import os, random, struct, sys
random.seed(int(sys.argv[2]))
m = sys.argv[1]
for i in range(200):
    p = f'{m}/f{i}'
    open(p, 'w').write('x' * i)
    for k in range(random.randint(1, 6)):
        name = random.choice(['user.a', 'user.' + 'n' * random.randint(1, 60), 'trusted.t%d' % k, 'user.\\xe9%d' % k, 'security.s%d' % k])
        size = random.choice([0, 1, 3, 4, 5, 100, 255, 500, 1000, 2000])
        try:
            os.setxattr(p, name, bytes(random.getrandbits(8) for _ in range(size)))
        except OSError:
            pass
acl = struct.pack('<I', 2) + b''.join(struct.pack('<HHI', tag, perm, qid) for tag, perm, qid in [(1, 6, 0xffffffff), (2, 4, 1000), (4, 4, 0xffffffff), (0x10, 6, 0xffffffff), (0x20, 4, 0xffffffff)])
for i in range(20):
    p = f'{m}/s{i}'
    open(p, 'w').write('s')
    os.setxattr(p, 'user.same', b'q' * 700)
    os.setxattr(p, 'system.posix_acl_access', acl)
`
  await withMount(t, image, (mnt) => {
    const r = spawnSync('python3', ['-c', py, mnt, String(seed)], { encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`python3: ${r.stderr}`)
  })
  const shared = new Set(Array.from({ length: 20 }, (_, i) => aclOf(image, `/s${i}`)))
  t.equal(shared.size, 1, 'the twenty identical sets share one block')
  await judgeSound(t, image)
})
