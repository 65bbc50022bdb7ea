/*
 * Listed names that are not one pathname component (a buggy or hostile
 * server, or a proxy between): "../x" would have cp -r write outside the
 * local directory it copies to, and rm -r remove outside the directory it
 * removes; a NUL makes Node's file calls throw. The client fails such a
 * listing with EIO (as FUSE's kernel side does), and cp -r copies nothing
 * outside its target.
 */
import t from 'tap'
import type { Test } from 'tap'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { NfsClient } from '../../client/index.ts'
import { isNfsError } from '../../client/errors.ts'
import { ensureBuilt, tsnfs } from '../cli/run-cli.ts'
import { startServer } from '../helpers/server.ts'
import { startProxy } from './proxy.ts'
import type { TcpProxy } from './proxy.ts'

const EXPORTS = '/export *(rw,insecure,no_root_squash,backend=memory)\n'

/** Every reply record with the bytes `from` replaced by `to` (same length: the XDR around them stays whole). */
function replaceInReplies(proxy: TcpProxy, from: string, to: string): { replaced: number } {
  const n = { replaced: 0 }
  const a = Buffer.from(from, 'latin1')
  const b = Buffer.from(to, 'latin1')
  proxy.rewriteReply = (rec) => {
    let at = rec.indexOf(a)
    if (at < 0) return rec
    const out = Buffer.from(rec)
    while (at >= 0) {
      b.copy(out, at)
      n.replaced++
      at = out.indexOf(a, at + a.length)
    }
    return out
  }
  return n
}

async function setup(t: Test, name: string): Promise<{ url: string; proxy: TcpProxy; direct: NfsClient }> {
  const fx = await startServer(t, EXPORTS)
  const direct = await NfsClient.mount(fx.url('/export'), {})
  t.teardown(() => direct.umount())
  await direct.mkdir('/d')
  await direct.writeFile('/d/good', Buffer.from('good'))
  await direct.writeFile(`/d/${name}`, Buffer.from('bad'))
  const proxy = await startProxy(t, fx.port)
  return { url: `nfs://127.0.0.1/export?nfsport=${String(proxy.port)}&mountport=${String(fx.port)}`, proxy, direct }
}

for (const [what, to] of [['"../x"', '../x'], ['a NUL', 'ev\0l'], ['a slash', 'ev/l']] as const) {
  t.test(`a listing that names ${what}: EIO for READDIR and READDIRPLUS`, async (t) => {
    const { url, proxy } = await setup(t, 'evil')
    const r = replaceInReplies(proxy, 'evil', to)
    for (const plus of [false, true]) {
      const c = await NfsClient.mount(url, { readdirplus: plus })
      t.teardown(() => c.umount())
      const err = await (plus ? c.readdirPlus('/d') : c.readdir('/d')).then(() => null, (e: unknown) => e)
      t.ok(isNfsError(err, 'NFS3ERR_IO'), `${plus ? 'READDIRPLUS' : 'READDIR'}: NFS3ERR_IO (${String(err)})`)
      t.match(err, { errno: 'EIO', procedure: plus ? 'READDIRPLUS' : 'READDIR', path: '/d' })
    }
    t.ok(r.replaced >= 2, 'the name was changed on the way')
  })
}

t.test('cp -r from a server that lists "../x": fails, and writes nothing outside its target', async (t) => {
  const { url, proxy, direct } = await setup(t, 'evil')
  // What "../x" names from /d, so that a copy which took the name would find it and write it beside the target.
  await direct.writeFile('/x', Buffer.from('outside'))
  replaceInReplies(proxy, 'evil', '../x')
  const work = mkdtempSync(join(tmpdir(), 'tsnfs-readdir-names-'))
  t.teardown(() => { rmSync(work, { recursive: true, force: true }) })
  const target = join(work, 'target')
  await ensureBuilt()
  const r = await tsnfs(['cp', '-r', url.replace('/export?', '/export/d?'), target])
  t.not(r.code, 0, `cp -r failed (${r.stderr.trim()})`)
  t.match(r.stderr, /Input\/output error/, 'saying why (EIO)')
  t.notOk(existsSync(join(work, 'x')), 'nothing written beside the target')
  t.same(readdirSync(work), existsSync(target) ? ['target'] : [], 'only the target, if anything')
})
