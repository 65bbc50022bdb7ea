import t from 'tap'
import { startServer } from '../helpers/server.ts'
import { KIB, MIB, mountFiles, random } from './file-helpers.ts'

const BS = 64 * KIB

t.test('round trips of many sizes, seen by a second client', async t => {
  const fx = await startServer(t)
  const c = await mountFiles(t, fx, { rsize: BS, wsize: BS })
  const other = await mountFiles(t, fx, { rsize: BS, wsize: BS })
  t.equal(c.files.opts.blockSize, BS)
  for (const n of [0, 1, 4095, 4096, BS - 1, BS, BS + 1, 3 * BS + 7]) {
    const data = random(n)
    await c.writeFile(`f${n}`, data)
    t.ok((await c.readFile(`f${n}`)).equals(data), `${n} bytes, same client`)
    t.ok((await other.readFile(`f${n}`)).equals(data), `${n} bytes, other client`)
    t.equal((await other.stat(`f${n}`)).size, BigInt(n))
  }
})

t.test('64 MiB round trip', async t => {
  const fx = await startServer(t)
  const c = await mountFiles(t, fx)
  const other = await mountFiles(t, fx)
  const data = random(64 * MIB)
  await c.writeFile('big', data)
  t.ok((await other.readFile('big')).equals(data))
  t.ok((await c.readFile('big')).equals(data))
})

t.test('random-offset writes and reads against an in-memory model', async t => {
  const fx = await startServer(t)
  const c = await mountFiles(t, fx, { rsize: 16 * KIB, wsize: 16 * KIB })
  const other = await mountFiles(t, fx)
  const model = Buffer.alloc(300 * KIB)
  let size = 0
  const f = await c.open('model', 'w+')
  let seed = 42
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31
    return seed % n
  }
  for (let i = 0; i < 300; i++) {
    const pos = rnd(280 * KIB)
    const len = 1 + rnd(20 * KIB)
    if (rnd(3) === 0) {
      const got = await f.read(len, pos)
      const want = model.subarray(pos, Math.min(pos + len, size))
      if (!got.equals(pos >= size ? Buffer.alloc(0) : want)) {
        t.fail(`read ${len} at ${pos} differs (size ${size})`)
        return
      }
    } else {
      const d = random(len)
      t.equal(await f.write(d, pos), len)
      d.copy(model, pos)
      size = Math.max(size, pos + len)
    }
    if (i === 150) await f.fsync()
  }
  t.equal((await f.stat()).size, BigInt(size), 'stat of the open file shows the local size')
  t.ok((await f.read(size, 0)).equals(model.subarray(0, size)), 'whole file, same open')
  await f.close()
  t.ok((await other.readFile('model')).equals(model.subarray(0, size)), 'byte-exact on the server')
})

t.test('append, truncate, positions, flags', async t => {
  const fx = await startServer(t)
  const c = await mountFiles(t, fx, { rsize: BS, wsize: BS })
  const other = await mountFiles(t, fx)
  await c.writeFile('a', Buffer.from('hello'))
  const a = await c.open('a', 'a')
  await a.write(Buffer.from(' world'))
  await a.write(Buffer.from('!'), 0) // position is ignored in append mode, as in Node on Linux
  await t.rejects(a.read(1), { code: 'NFS_CLIENT_EBADF', errno: 'EBADF' })
  await a.close()
  await a.close()
  t.equal((await other.readFile('a')).toString(), 'hello world!')
  await t.rejects(a.write(Buffer.from('x')), { code: 'NFS_CLIENT_EBADF' })

  const r = await c.open('a')
  t.equal((await r.read(5)).toString(), 'hello')
  t.equal((await r.read(100)).toString(), ' world!', 'short at EOF')
  t.equal((await r.read(100)).length, 0, 'empty at EOF')
  t.equal((await r.read(3, 6n)).toString(), 'wor')
  await t.rejects(r.write(Buffer.from('x')), { code: 'NFS_CLIENT_EBADF' })
  await r.close()

  const f = await c.open('t', 'w+')
  const data = random(3 * BS + 100)
  await f.write(data)
  await f.truncate(BS + 10)
  t.equal((await f.stat()).size, BigInt(BS + 10))
  t.ok((await f.read(4 * BS, 0)).equals(data.subarray(0, BS + 10)), 'shrunk, dirty data beyond dropped')
  await f.truncate(2 * BS)
  const grown = await f.read(4 * BS, 0)
  t.equal(grown.length, 2 * BS)
  t.ok(grown.subarray(0, BS + 10).equals(data.subarray(0, BS + 10)))
  t.ok(grown.subarray(BS + 10).equals(Buffer.alloc(BS - 10)), 'grown part reads as zeros')
  await f.close()
  const back = await other.readFile('t')
  t.ok(back.equals(grown), 'the server agrees')

  await t.rejects(c.open('t', 'wx'), { errno: 'EEXIST', code: 'NFS3ERR_EXIST' })
  await t.rejects(c.open('missing'), { errno: 'ENOENT', code: 'NFS3ERR_NOENT' })
  await c.mkdir('dir')
  await t.rejects(c.open('dir'), { errno: 'EISDIR', code: 'NFS_CLIENT_EISDIR' })
  const w = await c.open('t', 'w')
  t.equal((await w.stat()).size, 0n, "'w' truncates")
  await w.close()
  const x = await c.open('new', 'wx', 0o600)
  await x.write(Buffer.from('x'))
  await x.close()
  t.equal((await c.stat('new')).mode, 0o600)
})

t.test('two opens of one file share dirty data', async t => {
  const fx = await startServer(t)
  const c = await mountFiles(t, fx, { rsize: BS, wsize: BS })
  const w = await c.open('two', 'w')
  const r = await c.open('two', 'r')
  await w.write(Buffer.from('abcdef'))
  t.equal((await r.read(10)).toString(), 'abcdef', 'read-your-writes across opens')
  await w.write(Buffer.from('XY'), 2)
  t.equal((await r.read(10, 0)).toString(), 'abXYef', 'the cached block was patched')
  await w.close()
  await r.close()
  const other = await mountFiles(t, fx)
  t.equal((await other.readFile('two')).toString(), 'abXYef')
})

t.test('truncate while WRITEs are in flight: nothing beyond the new size comes back', async t => {
  const fx = await startServer(t)
  const c = await mountFiles(t, fx, { rsize: BS, wsize: BS })
  const other = await mountFiles(t, fx)
  for (const keep of [3 * BS + 5, 0, 10 * BS + 1]) {
    const f = await c.open('tr', 'w')
    const data = random(10 * BS)
    await f.write(data) // ten full blocks: their WRITEs start at once
    await f.truncate(keep)
    await f.close()
    const want = Buffer.alloc(keep)
    data.copy(want, 0, 0, Math.min(keep, data.length))
    t.ok((await other.readFile('tr')).equals(want), `truncated to ${keep}`)
    t.ok((await c.readFile('tr')).equals(want), 'and the writer agrees')
  }
})
