/*
 * What every ObjectStore must do (vfs/cluster/object-store.ts), as one suite
 * run against each implementation: ranges and short reads, missing keys,
 * idempotent deletes, listing by prefix in byte order across page edges.
 */
import type { Test } from 'tap'
import { ObjectMissing, type ObjectInfo, type ObjectStore } from '../../../../vfs/cluster/object-store.ts'

async function all(it: AsyncIterable<ObjectInfo>): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = []
  for await (const o of it) out.push(o)
  return out
}

/** Run `n` jobs at most `width` at a time. */
async function pool(n: number, width: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) await job(next++)
  }))
}

/**
 * `store` is fresh and empty under `ns` (every key this suite writes starts with it);
 * `pageSize` is the page size the store was opened with, so the listing crosses page edges.
 */
export async function objectStoreContract(t: Test, store: ObjectStore, ns: string, pageSize: number): Promise<void> {
  const before = Date.now() - 60_000

  await t.test('put, then get whole, ranges and short reads', async (t) => {
    const data = Buffer.alloc(100_000)
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + 3) & 0xff
    await store.put(`${ns}blk/a`, data)
    t.same(await store.get(`${ns}blk/a`, 0, data.length), data, 'whole')
    t.same(await store.get(`${ns}blk/a`, 4096, 4096), data.subarray(4096, 8192), 'a middle range')
    t.same(await store.get(`${ns}blk/a`, 99_990, 100), data.subarray(99_990), 'past the end: the bytes that are there')
    t.equal((await store.get(`${ns}blk/a`, 100_000, 10)).length, 0, 'at the end: empty')
    t.equal((await store.get(`${ns}blk/a`, 200_000, 10)).length, 0, 'far past the end: empty')
    t.equal((await store.get(`${ns}blk/a`, 5, 0)).length, 0, 'zero length')
    await store.put(`${ns}blk/empty`, Buffer.alloc(0))
    t.equal((await store.get(`${ns}blk/empty`, 0, 10)).length, 0, 'an empty object')
    // Written again (a retried upload): the last write is what is read.
    await store.put(`${ns}blk/a`, Buffer.from('again'))
    t.same(await store.get(`${ns}blk/a`, 0, 100), Buffer.from('again'), 'overwritten')
  })

  await t.test('a missing key: ObjectMissing naming it', async (t) => {
    for (const [off, len] of [[0, 10], [0, 0], [50, 1]] as const) {
      const err = await store.get(`${ns}nope`, off, len).then(() => undefined, (e: unknown) => e)
      t.ok(err instanceof ObjectMissing, `get(${off}, ${len}): ${String(err)}`)
      t.equal((err as ObjectMissing).key, `${ns}nope`)
    }
  })

  await t.test('bad ranges are refused before any request', async (t) => {
    await t.rejects(store.get(`${ns}blk/a`, -1, 10), RangeError)
    await t.rejects(store.get(`${ns}blk/a`, 0, -1), RangeError)
    await t.rejects(store.get(`${ns}blk/a`, 0.5, 10), RangeError)
    await t.rejects(store.get(`${ns}blk/a`, 0, 65 * 1024 * 1024), RangeError)
  })

  await t.test('delete: gone after, idempotent, missing keys are no error', async (t) => {
    await store.put(`${ns}del/1`, Buffer.from('one'))
    await store.put(`${ns}del/2`, Buffer.from('two'))
    await store.delete([`${ns}del/1`, `${ns}del/never`])
    await t.rejects(store.get(`${ns}del/1`, 0, 3), ObjectMissing)
    t.same(await store.get(`${ns}del/2`, 0, 3), Buffer.from('two'), 'the other stays')
    await store.delete([`${ns}del/1`])
    await store.delete([])
    await store.delete([`${ns}del/2`])
    t.same(await all(store.list(`${ns}del/`)), [], 'nothing left')
  })

  await t.test('list: by prefix, in byte order, across page edges', async (t) => {
    // Names a locale collation would order differently from bytes ("_" and "-" and case).
    const odd = ['x_b', 'xa', 'x-c', 'X', 'x', 'x/y', 'x~', 'xb']
    const n = pageSize * 2 + 3
    const keys = [...Array.from({ length: n }, (_, i) => `${ns}lst/k${String(i).padStart(5, '0')}`), ...odd.map((k) => `${ns}lst/${k}`)]
    await pool(keys.length, 8, async (i) => { await store.put(keys[i] ?? '', Buffer.alloc(i % 5)) })
    await store.put(`${ns}lsu/outside`, Buffer.from('x'))
    const got = await all(store.list(`${ns}lst/`))
    const want = [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
    t.same(got.map((o) => o.key), want, `${keys.length} keys in byte order, none outside the prefix`)
    const k7 = got.find((o) => o.key === `${ns}lst/k00007`)
    t.equal(k7?.size, 7 % 5, 'sizes')
    t.ok((k7?.mtimeMs ?? 0) > before && (k7?.mtimeMs ?? 0) < Date.now() + 60_000, `mtime ${k7?.mtimeMs ?? 0}`)
    t.same((await all(store.list(`${ns}lst/x_`))).map((o) => o.key), [`${ns}lst/x_b`], 'a prefix with "_" is not a pattern')
    t.same(await all(store.list(`${ns}none/`)), [], 'an empty prefix range')
    await store.delete([...keys, `${ns}lsu/outside`])
    t.same(await all(store.list(`${ns}ls`)), [], 'deleted in batches')
  })

  await t.test('init twice is fine', async (t) => {
    await store.init()
    await store.init()
    t.match(store.describe(), /\S/)
  })
}
