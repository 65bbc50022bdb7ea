/*
 * The reader fuzz, short version (the long one: npm run fuzz:engine, see
 * bench/fuzz-engine.ts): a few hundred images made from two kernel-filled
 * mkfs.ext4 images (4 KiB and 1 KiB blocks, metadata_csum) by corrupting
 * their metadata, each opened and walked whole. Every failure must be an
 * Error with a code; the seed is printed (FUZZ_SEED=... to repeat, and
 * FUZZ_IMAGES=... for more). Needs root and loop devices (skips, saying why).
 */
import t from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { loadBase, makeBaseBytes, whyNoBase } from './fuzz-base.ts'
import type { BaseName } from './fuzz-base.ts'
import { describeFailure, fuzzOne, judgeUndetected, prepare, runFuzz } from './fuzz-run.ts'
import type { LoadedBase } from './fuzz-run.ts'
import { classify, walkImage } from './fuzz-walk.ts'
import { FormatError } from '../../../vfs/engine/format/errors.ts'
import { VfsError } from '../../../vfs/errors.ts'
import { NO_VERIFY } from '../../../vfs/engine/reader/verify.ts'

// Some 15 s of CPU; on a loaded machine (two cores, other suites running) more wall time than tap's default.
t.setTimeout(300_000)

const why = whyNoBase()
if (why !== undefined) t.comment(`skipping: ${why}`)

const KINDS = ['superblock', 'group-desc', 'inode', 'extent-block', 'dir-block', 'dx-block', 'block-bitmap', 'inode-bitmap']

t.test('the harness counts only coded errors as expected, and stops a walk past its bounds', async (t) => {
  t.strictSame(classify(new FormatError('EXT4_CORRUPT', 'x'), false), { code: 'EXT4_CORRUPT', ok: true })
  t.strictSame(classify(new TypeError('x'), false), { code: 'TypeError', ok: false })
  t.strictSame(classify(new RangeError('x'), true), { code: 'RangeError', ok: false })
  t.strictSame(classify(new VfsError('ENOENT'), true), { code: 'ENOENT', ok: true }, 'a lookup may not find a name')
  t.strictSame(classify(new VfsError('ENOENT'), false), { code: 'ENOENT', ok: false }, 'a walk of what the image names must not get ENOENT')
  t.strictSame(classify('thrown string', false), { code: 'string', ok: false })
  const dev = new MemoryDevice(1 << 20)
  const late = await walkImage(dev, { deadlineMs: -1 })
  t.equal(late.failures[0]?.code, 'FUZZ_TIMEOUT', 'a walk past its deadline is a failure')
  const greedy = await walkImage(dev, { deadlineMs: 5000, maxBytesPerCall: 100 })
  t.equal(greedy.failures[0]?.code, 'FUZZ_OVERREAD', 'a call reading past its cap is a failure')
  const zeros = await walkImage(dev, { deadlineMs: 5000 })
  t.strictSame(zeros.codes, { EXT4_BAD_MAGIC: 1 }, 'an image of zeros is refused at open')
  t.equal(zeros.failures.length, 0)
})

t.test('a few hundred corrupted images are opened and walked without a crash', { skip: why ?? false }, async (t) => {
  const seed = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 32))
  const images = Number(process.env.FUZZ_IMAGES ?? 200)
  t.comment(`seed ${seed} (FUZZ_SEED=${seed} to repeat), ${images} images`)
  const names: BaseName[] = ['4k', '1k']
  const bases: LoadedBase[] = []
  for (const n of names) bases.push(prepare(await loadBase(n, makeBaseBytes(n))))
  for (const b of bases) {
    const kinds = new Set(b.targets.map((x) => x.kind))
    t.strictSame([...kinds].sort(), [...KINDS].sort(), `base ${b.name}: ${b.targets.length} structures of every kind to corrupt`)
    t.ok(b.inodesWalked > 40, `base ${b.name}: its walk visits ${b.inodesWalked} inodes`)
  }
  // The same case twice gives the same image and the same answers.
  const base4k = bases[0]!
  const again = [await fuzzOne(base4k, 'noverify', 12345, 60_000), await fuzzOne(base4k, 'noverify', 12345, 60_000)]
  t.strictSame(again[1]?.mutations, again[0]?.mutations, 'a case seed makes the same mutations')
  t.strictSame(again[1]?.walk.codes, again[0]?.walk.codes, 'and the same errors')

  // The oracle of the verify mode: a walk that reads damage as truth is a failure (here made so by not verifying).
  const named = base4k.targets.find((x) => x.kind === 'dir-block' && x.ctx.ino === 2)
  t.ok(named, 'the root directory block is a target')
  const dev = base4k.dev.clone({ readOnly: false })
  const at = (named?.offset ?? 0) + base4k.bytes.subarray(named?.offset ?? 0).indexOf('small')
  dev.writeSync(at, Buffer.from('S'))
  const blind = await walkImage(dev, { verifier: NO_VERIFY, deadlineMs: 60_000 })
  t.strictSame(blind.failures, [], 'a renamed entry walks without error when nothing is verified')
  judgeUndetected(base4k, blind)
  t.equal(blind.failures.find((f) => f.step === 'readDir(2)')?.code, 'UNDETECTED', 'and the judge sees the root listing differ')
  const caught = await walkImage(dev, { deadlineMs: 60_000 })
  judgeUndetected(base4k, caught)
  t.strictSame(caught.failures, [], 'verified, the damage is caught instead')
  t.strictSame(Object.keys(caught.codes), ['EXT4_BAD_CHECKSUM'], 'as a bad checksum')
  t.notOk(caught.digests.has('readDir(2)'), 'the root listing is refused, not answered')

  const tally = await runFuzz({ bases, images, seed, deadlineMs: 20_000 })
  for (const f of tally.failures.slice(0, 10)) t.comment(describeFailure(f))
  t.comment(`images by first error: ${JSON.stringify(tally.firstCode)}`)
  t.comment(`errors by code: ${JSON.stringify(tally.allCodes)}; slowest image ${tally.slowestMs.toFixed(0)} ms`)
  t.equal(tally.failures.length, 0, 'no image made the reader throw anything but a coded error, loop or over-read')
  t.equal(tally.images, images)
  t.ok(tally.opened > images / 2, `${tally.opened} of ${images} opened: the damage is mostly past the superblock`)
  t.ok((tally.byMode.verify.EXT4_BAD_CHECKSUM ?? 0) > 0, 'with checksums verified, damage is caught as EXT4_BAD_CHECKSUM')
  t.equal(tally.byMode.noverify.EXT4_BAD_CHECKSUM, undefined, 'with NO_VERIFY, never')
  t.ok((tally.byMode.noverify.EXT4_CORRUPT ?? 0) > 0, 'with NO_VERIFY the structural checks catch it as EXT4_CORRUPT')
  t.ok((tally.byMode.resum.EXT4_CORRUPT ?? 0) > 0, 'so do they with the checksums recomputed')
})
