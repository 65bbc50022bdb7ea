/*
 * The write-path fuzz, short version (the long one: npm run fuzz:engine -- --write): damaged copies
 * of the reader fuzz's kernel-filled images opened read-write by the engine and changed (see
 * fuzz-write.ts for the judgements). The seed is printed (FUZZ_SEED=... to repeat,
 * FUZZ_WRITE_IMAGES=... for more). Needs root and loop devices (skips, saying why).
 */
import t from 'tap'
import { loadBase, makeBaseBytes, whyNoBase } from './fuzz-base.ts'
import type { BaseName } from './fuzz-base.ts'
import { prepare } from './fuzz-run.ts'
import type { LoadedBase } from './fuzz-run.ts'
import { describeWriteFailure, runWriteFuzz, writeOne } from './fuzz-write.ts'

t.setTimeout(300_000)
const why = whyNoBase()
if (why !== undefined) t.comment(`skipping: ${why}`)

t.test('damaged images changed through the engine: coded errors only, read-only after EIO, no hang', { skip: why ?? false }, async (t) => {
  const seed = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 32))
  const images = Number(process.env.FUZZ_WRITE_IMAGES ?? 120)
  t.comment(`seed ${seed} (FUZZ_SEED=${seed} to repeat), ${images} images`)
  const names: BaseName[] = ['4k', '1k']
  const bases: LoadedBase[] = []
  for (const n of names) bases.push(prepare(await loadBase(n, makeBaseBytes(n))))

  // The harness sees what it should: an undamaged copy (no mutation lands on a zero-length pick) changes cleanly.
  const again = [await writeOne(bases[0]!, 'verify', 777, 60_000), await writeOne(bases[0]!, 'verify', 777, 60_000)]
  t.strictSame(again[1]?.mutations, again[0]?.mutations, 'a case seed makes the same damage')
  t.strictSame(again[1]?.outcomes, again[0]?.outcomes, 'and the same outcomes')

  const tally = await runWriteFuzz({ bases, images, seed, deadlineMs: 20_000 })
  for (const f of tally.failures.slice(0, 10)) t.comment(describeWriteFailure(f))
  t.comment(`outcomes: ${JSON.stringify(tally.outcomes)}; ${tally.opened} opened, ${tally.readOnly} went read-only; slowest image ${tally.slowestMs.toFixed(0)} ms`)
  t.equal(tally.failures.length, 0, 'no call threw anything but a VfsError, hung, or changed anything after an EIO')
  t.equal(tally.images, images)
  t.ok((tally.outcomes.ok ?? 0) > images * 5, `most calls answered: ${tally.outcomes.ok ?? 0}`)
  t.ok(tally.readOnly > 0, 'some damage was found by a change and turned the engine read-only')
  t.ok((tally.outcomes.EROFS ?? 0) > 0, 'and the changes after it were refused EROFS')
})
