/*
 * Missing names through the mount (issue 11 point 3): a LOOKUP that finds
 * nothing is answered as a negative entry the kernel keeps for as long as
 * the client's own name cache would answer the name absent (lookupcache=all,
 * the directory's attributes fresh), so repeated stat(2)s of it cost no
 * request. What another client creates meanwhile is seen as a change to a
 * positive entry is: once the directory's attributes expire; an exclusive
 * create asks again at once; lookupcache=positive keeps no negative entry.
 */
import t from 'tap'
import { access, mkdir, open } from 'node:fs/promises'
import { join } from 'node:path'
import { NfsClient } from '../../client/nfs-client.ts'
import { TEST_OPTS, canFuse, exportDir, mountFuse, mountpointDir } from '../helpers/fuse.ts'

const skip = canFuse ? false : 'needs root and FUSE'

// The server runs in this process: calls through the mount must not block its event loop (no *Sync).

/** The errno code of a failing call, or 'ok'. */
async function codeOf(f: () => Promise<unknown>): Promise<string> {
  try {
    await f()
    return 'ok'
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err)
  }
}

const exists = async (path: string): Promise<boolean> => (await codeOf(() => access(path))) === 'ok'

t.test('a missing name: remembered within the cache time, an exclusive create asks again, seen once the directory expires', { skip }, async t => {
  const base = t.testdir({})
  const ex = await exportDir(t, base)
  const c = await NfsClient.mount(ex.url(ex.dir))
  t.teardown(() => c.umount())
  const long = mountpointDir(t)
  await mountFuse(t, ex.source, long, `${ex.portOpts},${TEST_OPTS},acdirmin=60,acdirmax=60`)
  await mkdir(join(long, 'd'))
  t.equal(await exists(join(long, 'd/x')), false, 'absent')
  await c.writeFile('d/x', Buffer.from('made elsewhere'))
  t.equal(await exists(join(long, 'd/x')), false, 'another client made it: within acdirmax the miss is remembered, as the name cache would answer')
  t.equal(await codeOf(async () => { await (await open(join(long, 'd/x'), 'wx')).close() }), 'EEXIST', 'an exclusive create is not answered from the negative entry')
  t.equal(await exists(join(long, 'd/x')), true, 'and the name is known from then on')

  const short = mountpointDir(t)
  await mountFuse(t, ex.source, short, `${ex.portOpts},${TEST_OPTS},acdirmin=1,acdirmax=1`)
  t.equal(await exists(join(short, 'd/y')), false, 'absent')
  await c.writeFile('d/y', Buffer.from('made elsewhere'))
  // A watchdog, not a timing assertion: the name must show up once the directory's attributes (1 s) expire.
  let seen = false
  for (let i = 0; i < 200 && !seen; i++) {
    seen = await exists(join(short, 'd/y'))
    if (!seen) await new Promise(resolve => setTimeout(resolve, 100))
  }
  t.equal(seen, true, 'seen after the directory attribute timeout')
})

t.test('stat(2) of a missing name again and again: one LOOKUP reaches the daemon', { skip }, async t => {
  const base = t.testdir({})
  const ex = await exportDir(t, base)
  const mnt = mountpointDir(t)
  const m = await mountFuse(t, ex.source, mnt, `${ex.portOpts},${TEST_OPTS},acdirmin=60,acdirmax=60`, ['--log-level', 'info'])
  await mkdir(join(mnt, 'd'))
  for (let i = 0; i < 20; i++) t.equal(await exists(join(mnt, 'd/missing')), false)
  t.equal(await m.stop(), 0)
  const ended = m.stderr().split('\n').find(l => l.includes('connection ended'))
  t.ok(ended, 'the daemon logged its request counts')
  const requests = (JSON.parse(ended ?? '{}') as { requests?: Record<string, number> }).requests ?? {}
  t.equal(requests.LOOKUP, 2, 'LOOKUP: "d" before the mkdir, "missing" once')
})

t.test('lookupcache=positive: no negative entry, a name made elsewhere is seen at once', { skip }, async t => {
  const base = t.testdir({ export: { d: {} } })
  const ex = await exportDir(t, base)
  const c = await NfsClient.mount(ex.url(ex.dir))
  t.teardown(() => c.umount())
  const mnt = mountpointDir(t)
  await mountFuse(t, ex.source, mnt, `${ex.portOpts},${TEST_OPTS},acdirmin=60,acdirmax=60,lookupcache=positive`)
  t.equal(await exists(join(mnt, 'd/z')), false, 'absent')
  await c.writeFile('d/z', Buffer.from('made elsewhere'))
  t.equal(await exists(join(mnt, 'd/z')), true, 'asked again, found')
})
