/*
 * Issue 15 §3 as processes: `tsnfs serve --standby` over a local export that
 * already held a tree before replication was turned on, and a new
 * `tsnfs standby` (a memory export of the same path). The primary resyncs the
 * standby while a client writes; the primary is SIGKILLed; after the
 * takeover the standby serves the same tree (names, types, sizes, modes,
 * content) under the same file ids and cookies, through the handles the
 * client got from the old primary.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { FILE_SYNC, Nfs3, S } from '../helpers/local.ts'
import { serveProcess, tsnfs } from '../cli/cli.ts'
import { standbyProcess, tempDir } from '../helpers/tsnfs-process.ts'
import { makeTree } from '../server/replication/resync-fixtures.ts'

interface Seen {
  fileid: bigint | undefined
  type: number | undefined
  size: bigint | undefined
  mode: number | undefined
  hash?: string
  cookie: bigint
}

/** Every object under `dir` by path, as a client sees it through `nfs` (READDIR cookies and fileids included). */
async function tree(nfs: Nfs3, dir: Buffer, prefix = '', out = new Map<string, Seen>()): Promise<Map<string, Seen>> {
  let cookie = 0n
  let verf: Buffer = Buffer.alloc(8)
  for (;;) {
    const page = await nfs.readdir(dir, cookie, verf, 65536)
    if (page.status !== S.OK) throw new Error(`READDIR ${prefix}: ${String(page.status)}`)
    const names = page.names ?? []
    for (let i = 0; i < names.length; i++) {
      const name = names[i] ?? ''
      if (name === '.' || name === '..') continue
      const l = await nfs.lookup(dir, name)
      if (l.fh === undefined) throw new Error(`LOOKUP ${prefix}${name}: ${String(l.status)}`)
      const a = await nfs.getattr(l.fh)
      // A directory's size is the backend's own (4096 on ext4, its entries in memory): left out.
      const seen: Seen = { fileid: a.fileid, type: a.type, size: a.type === 2 ? 0n : a.size, mode: a.mode, cookie: page.cookies?.[i] ?? -1n }
      if (a.type === 1) {
        const r = await nfs.read(l.fh, 0n, Number(a.size ?? 0n) + 1)
        seen.hash = createHash('sha256').update(r.data ?? Buffer.alloc(0)).digest('hex')
      }
      out.set(prefix + name, seen)
      if (a.type === 2) await tree(nfs, l.fh, `${prefix}${name}/`, out)
    }
    if (page.eof === true || names.length === 0) return out
    cookie = page.cookies?.at(-1) ?? 0n
    verf = page.verf ?? verf
  }
}

t.test('a tree that existed before replication: resynced to a new standby while a client writes; after the takeover the same tree, fileids and cookies', async (t) => {
  const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 1_000_000)
  t.comment(`seed ${seed}`)
  const exportPath = tempDir(t, 'tsnfs-resync-')
  const primaryState = tempDir(t, 'tsnfs-resync-a-')
  const standbyState = tempDir(t, 'tsnfs-resync-b-')
  const conf = tempDir(t, 'tsnfs-resync-conf-')
  makeTree(exportPath, seed, 80, 6, 100_000)
  writeFileSync(join(conf, 'primary'), `${exportPath} *(rw,insecure,no_root_squash)\n`)
  // The standby's copy in memory (a local one would be the same directory on this one host).
  writeFileSync(join(conf, 'standby'), `${exportPath} *(rw,insecure,no_root_squash,backend=memory)\n`)
  const standby = await standbyProcess(t, ['--listen', '127.0.0.1:0', '--exports', join(conf, 'standby'), '--state-dir', standbyState, '--port', '0', '--host', '127.0.0.1', '--node', 'b'], 30_000)
  const primary = await serveProcess(t, [
    '--exports', join(conf, 'primary'), '--port', '0', '--host', '127.0.0.1', '--state-dir', primaryState, '--no-lock', '--admin', 'off',
    '--standby', `127.0.0.1:${standby.port}`, '--sync', '--heartbeat', '200', '--node', 'a',
  ])
  const one = await Nfs3.connect(t, primary.port)
  const root = await one.mount(exportPath)
  // Writes while the resync runs (it starts at the standby's HELLO).
  let n = 0
  // Set when the standby has caught up after its resync: an object, so the loop sees it change.
  const joined = { yes: false }
  const waitJoined = primary.waitForLog(/standby joined the sync set/, 60_000).then(() => {
    joined.yes = true
  })
  waitJoined.catch(() => undefined)
  while (!joined.yes || n < 20) {
    if (n > 2000) await waitJoined
    const c = await one.create(root, `during-${String(n)}`)
    if (c.status !== S.OK || c.fh === undefined) throw new Error(`CREATE: ${String(c.status)}`)
    t.equal((await one.write(c.fh, 0n, Buffer.alloc(5000 + n, n & 0xff), FILE_SYNC)).status, S.OK, `write ${String(n)}`, { diagnostic: false })
    n++
  }
  t.comment(`${String(n)} files written during and just after the resync`)
  // A FILE_SYNC reply after the standby joined the sync set: everything before it is on the standby.
  const last = await one.create(root, 'last')
  if (last.fh === undefined) throw new Error('CREATE last')
  t.equal((await one.write(last.fh, 0n, Buffer.from('the end'), FILE_SYNC)).status, S.OK)
  const before = await tree(one, root)
  t.ok(before.size > 80 + n, `${String(before.size)} objects on the primary`)
  primary.child.kill('SIGKILL')
  await primary.exit
  one.c.close()

  const took = await tsnfs(['replication', 'takeover', `127.0.0.1:${standby.port}`, '--force'])
  t.equal(took.code, 0, `takeover: ${took.stdout}${took.stderr}`)
  const m = await standby.waitFor(/took over \(epoch (\d+)\): serving NFSv3 \+ MOUNT on TCP and UDP port (\d+)/)
  const two = await Nfs3.connect(t, Number(m[2]))
  t.ok((await two.mount(exportPath)).equals(root), 'the same root handle')
  const after = await tree(two, root)
  const diff = [...before].filter(([p, s]) => JSON.stringify(after.get(p), (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) !== JSON.stringify(s, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)))
  t.same(diff.slice(0, 5), [], 'every object the same: type, size (of files), mode, content, fileid, cookie')
  t.equal(after.size, before.size, 'nothing extra')
})
