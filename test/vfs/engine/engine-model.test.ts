/*
 * The engine against the memory backend as a model: one seeded sequence of NFS-shaped operations
 * on both, every outcome equal; then the image is judged by e2fsck -fn, reopened (a restart keeps
 * everything), and read by the kernel's loop mount, which must see the same tree byte for byte.
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import { makeFileSystem } from '../../../vfs/engine/mkfs/mkfs.ts'
import { openEngine } from '../../../vfs/engine/fs/assemble.ts'
import { MemoryVfs } from '../../../vfs/memory/memory-vfs.ts'
import { dumpHost, dumpVfs, runWorkload } from './engine-helpers.ts'
import { scratch, whyNoLoopMount, withMount } from './format-helpers.ts'

async function freshImage(file: string, size: number, blockSize: 1024 | 4096): Promise<void> {
  const dev = await ImageFile.create(file, size)
  try {
    await makeFileSystem(dev, { blockSize, zeroed: true })
  } finally {
    await dev.close()
  }
}

function e2fsck(file: string): { status: number | null; out: string } {
  const r = spawnSync('e2fsck', ['-fn', file], { encoding: 'utf8' })
  return { status: r.status, out: `${r.stdout}${r.stderr}` }
}

for (const blockSize of [4096, 1024] as const) {
  t.test(`engine matches the memory model (${blockSize}-byte blocks), e2fsck -fn clean, same tree after restart and through the kernel`, async (t) => {
    const seed = Number(process.env.ENGINE_SEED ?? Math.floor(Math.random() * 2 ** 31))
    t.comment(`seed ${seed}`)
    const dir = scratch(t, 'engine-model')
    const image = path.join(dir, 'e.img')
    await freshImage(image, 256 * 2 ** 20, blockSize)
    const engine = await openEngine(image)
    const model = new MemoryVfs()
    const log = await runWorkload([model, engine], seed, { ops: 600, names: 10 })
    let mismatches = 0
    for (const { op, outcomes } of log) {
      if (outcomes[0] !== outcomes[1]) {
        if (mismatches++ < 5) t.fail(`${op}: model ${outcomes[0]} engine ${outcomes[1]}`)
      }
    }
    t.equal(mismatches, 0, `all ${log.length} outcomes equal the model's`)
    const want = await dumpVfs(model)
    t.strictSame(await dumpVfs(engine), want, 'the engine holds the model tree')
    await engine.close()

    const fsck = e2fsck(image)
    t.equal(fsck.status, 0, 'e2fsck -fn clean')
    if (fsck.status !== 0) t.comment(fsck.out)

    const again = await openEngine(image)
    t.strictSame(await dumpVfs(again), want, 'after a restart: the same tree')
    await again.close()

    const why = whyNoLoopMount()
    if (why !== undefined) {
      t.comment(`kernel comparison skipped: ${why}`)
      return
    }
    const seen = await withMount(t, image, (mnt) => dumpHost(mnt))
    t.strictSame(seen, want, 'the kernel sees the same tree byte for byte')
    t.ok(fs.existsSync(image))
  })
}
