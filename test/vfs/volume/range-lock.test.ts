import t from 'tap'
import { clipRegions, pacedSteps } from '../../../vfs/volume/paced-steps.ts'
import { RangeLock } from '../../../vfs/volume/range-lock.ts'

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

t.test('shared locks overlap each other; exclusive waits for them, in arrival order', async (t) => {
  const lock = new RangeLock()
  const order: string[] = []
  const s1 = await lock.acquire(0, 100, false)
  const s2 = await lock.acquire(50, 100, false)
  t.equal(lock.size, 2, 'two overlapping shared holders at once')
  const x = lock.acquire(90, 20, true).then((release) => {
    order.push('x')
    return release
  })
  // A shared request arriving after the exclusive one waits behind it: no starvation.
  const s3 = lock.acquire(95, 1, false).then((release) => {
    order.push('s3')
    return release
  })
  const far = await lock.acquire(200, 10, true)
  order.push('far')
  await tick()
  t.strictSame(order, ['far'], 'a disjoint exclusive range is granted at once; the overlapping ones wait')
  s1()
  await tick()
  t.strictSame(order, ['far'], 'still one shared holder')
  s2()
  const releaseX = await x
  await tick()
  t.strictSame(order, ['far', 'x'])
  releaseX()
  releaseX()
  const releaseS3 = await s3
  t.strictSame(order, ['far', 'x', 's3'])
  releaseS3()
  far()
  t.equal(lock.size, 0)
  t.equal(await lock.with(0, 1, true, async () => 42), 42)
  await t.rejects(lock.with(0, 1, true, async () => Promise.reject(new Error('boom'))), { message: 'boom' })
  t.equal(lock.size, 0, 'released on a throw too')
  const release = await lock.acquire(10, 0, true)
  t.equal(await lock.with(10, 1, true, async () => 'empty ranges conflict with nothing'), 'empty ranges conflict with nothing')
  release()
})

t.test('clipRegions sorts, merges and clips what a log hands back', async (t) => {
  t.strictSame(
    clipRegions(
      [
        { offset: 8192, length: 4096 },
        { offset: -4096, length: 8192 },
        { offset: 10000, length: 8000 },
        { offset: 30000, length: 0 },
        { offset: 60000, length: 1e9 },
        { offset: 1.5, length: 2 },
        { offset: 70000, length: 1 },
      ],
      65536,
    ),
    [
      { offset: 0, length: 4096 },
      { offset: 8192, length: 18000 - 8192 },
      { offset: 60000, length: 5536 },
    ],
  )
})

t.test('pacedSteps refuses bad steps and rates before allocating anything', async (t) => {
  const never = async (): Promise<void> => {
    t.fail('no step may run')
  }
  for (const stepBytes of [0, -1, 0.5, 65 * 1024 * 1024]) await t.rejects(pacedSteps([{ offset: 0, length: 10 }], { stepBytes }, never), { code: 'VOLUME_LAYOUT' })
  for (const rateBytesPerSec of [-1, Number.NaN, Infinity]) await t.rejects(pacedSteps([{ offset: 0, length: 10 }], { rateBytesPerSec }, never), { code: 'VOLUME_LAYOUT' })
  const steps: number[][] = []
  t.equal(await pacedSteps([{ offset: 5, length: 10 }, { offset: 100, length: 3 }], { stepBytes: 4 }, async (o, n) => void steps.push([o, n])), 13)
  t.strictSame(steps, [[5, 4], [9, 4], [13, 2], [100, 3]])
})
