/*
 * A local export across a server restart (same exports, same state dir):
 * handles and READDIR cookies keep working, renames through NFS (of the
 * file and of its parent) keep the old handle valid, host-side deletes and
 * creates are seen, and the write verifier changes (RFC 1813 §3.3.7).
 */
import t from 'tap'
import type { Test } from 'tap'
import fs from 'node:fs'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startServer } from '../helpers/server.ts'
import type { ServerFixture } from '../helpers/server.ts'
import { Nfs3, S, UNSTABLE } from '../helpers/local.ts'

function stateDirFor(t: Test): string {
  const d = mkdtempSync(join(tmpdir(), 'tsnfs-state-'))
  t.teardown(() => {
    rmSync(d, { recursive: true, force: true })
  })
  return d
}

/** A server over `dir` that the test closes itself (restart) or teardown closes. */
async function serve(t: Test, dir: string, stateDir: string): Promise<{ s: ServerFixture; nfs: Nfs3; root: Buffer; close: () => Promise<void> }> {
  const s = await startServer(t, `${dir} *(rw,insecure,no_root_squash)\n`, { stateDir })
  const nfs = await Nfs3.connect(t, s.port)
  const root = await nfs.mount(dir)
  let closed: Promise<void> | null = null
  return {
    s, nfs, root,
    close: () => {
      closed ??= (async () => {
        nfs.c.close()
        await s.server.close()
      })()
      return closed
    },
  }
}

t.test('handles, cookies and renamed objects survive a restart', async (t) => {
  const files: Record<string, string> = {}
  for (let i = 0; i < 400; i++) files[`entry-${String(i).padStart(4, '0')}`] = `content ${i}\n`
  const dir = t.testdir({ a: { b: { 'file.txt': 'the payload\n' } }, big: files, gone: 'bye\n' })
  const stateDir = stateDirFor(t)

  const one = await serve(t, dir, stateDir)
  const aFh = await one.nfs.walk(one.root, 'a')
  const bFh = await one.nfs.walk(aFh, 'b')
  const fileFh = await one.nfs.walk(bFh, 'file.txt')
  const goneFh = await one.nfs.walk(one.root, 'gone')
  const bigFh = await one.nfs.walk(one.root, 'big')
  const before = await one.nfs.getattr(fileFh)
  t.equal(before.status, S.OK)

  // First READDIR page before the restart: small, so many pages remain.
  const page1 = await one.nfs.readdir(bigFh, 0n, Buffer.alloc(8), 1024)
  t.equal(page1.status, S.OK)
  t.equal(page1.eof, false, 'more pages remain')
  const firstNames = page1.names ?? []
  t.ok(firstNames.length > 0 && firstNames.length < 400, `first page has ${firstNames.length} names`)
  const cookie = page1.cookies?.at(-1) ?? 0n
  const verf = page1.verf ?? Buffer.alloc(8)

  // Rename the file, then its parent, through NFS.
  t.equal(await one.nfs.rename(bFh, 'file.txt', bFh, 'renamed.txt'), S.OK)
  t.equal(await one.nfs.rename(aFh, 'b', one.root, 'b2'), S.OK)
  t.ok(fs.existsSync(join(dir, 'b2', 'renamed.txt')), 'on the host: b2/renamed.txt')
  const read1 = await one.nfs.read(fileFh, 0n, 100)
  t.equal(read1.status, S.OK, 'old handle reads after both renames')
  t.equal(read1.data?.toString(), 'the payload\n')
  t.equal((await one.nfs.getattr(fileFh)).fileid, before.fileid)

  const w1 = await one.nfs.write(fileFh, 0n, Buffer.from('THE'), UNSTABLE)
  t.equal(w1.status, S.OK)
  t.equal((await one.nfs.commit(fileFh)).status, S.OK)
  await one.close()

  const two = await serve(t, dir, stateDir)
  t.ok(two.root.equals(one.root), 'the root handle is the same after the restart')
  const afterRoot = await two.nfs.getattr(one.root)
  t.equal(afterRoot.status, S.OK, 'old root handle works')
  const read2 = await two.nfs.read(fileFh, 0n, 100)
  t.equal(read2.status, S.OK, 'old file handle reads after the restart')
  t.equal(read2.data?.toString(), 'THE payload\n')
  t.equal((await two.nfs.getattr(bFh)).status, S.OK, 'the renamed parent keeps its handle')
  const viaName = await two.nfs.lookup(await two.nfs.walk(two.root, 'b2'), 'renamed.txt')
  t.ok(viaName.fh?.equals(fileFh), 'LOOKUP of the new name gives the very same handle')
  t.equal((await two.nfs.lookup(bFh, 'file.txt')).status, S.NOENT, 'the old name is gone')

  // The READDIR continues from the cookie with the old verifier.
  const rest: string[] = []
  let c = cookie
  let v = verf
  for (;;) {
    const r = await two.nfs.readdir(bigFh, c, v, 1024)
    t.equal(r.status, S.OK, 'a cookie of the old server is accepted')
    if (r.status !== S.OK) break
    rest.push(...(r.names ?? []))
    if (r.eof === true) break
    c = r.cookies?.at(-1) ?? 0n
    v = r.verf ?? v
  }
  const all = [...firstNames, ...rest].filter((n) => n !== '.' && n !== '..')
  t.equal(all.length, 400, 'each entry exactly once')
  t.equal(new Set(all).size, 400)
  t.strictSame([...all].sort(), Object.keys(files).sort())

  const w2 = await two.nfs.write(fileFh, 0n, Buffer.from('THE'), UNSTABLE)
  t.equal(w2.status, S.OK)
  t.not(w2.verf?.toString('hex'), w1.verf?.toString('hex'), 'the write verifier differs across restarts')
  const c2 = await two.nfs.commit(fileFh)
  t.ok(c2.verf?.equals(w2.verf ?? Buffer.alloc(0)), 'COMMIT answers the same verifier as WRITE on one server')

  // Host-side delete: the old handle is STALE, the name NOENT.
  t.equal((await two.nfs.getattr(goneFh)).status, S.OK)
  fs.unlinkSync(join(dir, 'gone'))
  t.equal((await two.nfs.getattr(goneFh)).status, S.STALE, 'a handle of a file deleted on the host is STALE')
  t.equal((await two.nfs.read(goneFh, 0n, 10)).status, S.STALE)
  t.equal((await two.nfs.lookup(two.root, 'gone')).status, S.NOENT)

  // Host-side create: seen by LOOKUP and READDIR.
  fs.writeFileSync(join(dir, 'big', 'host-made'), 'made on the host\n')
  const made = await two.nfs.lookup(bigFh, 'host-made')
  t.equal(made.status, S.OK, 'a file created on the host is found by LOOKUP')
  t.equal((await two.nfs.read(made.fh ?? Buffer.alloc(0), 0n, 100)).data?.toString(), 'made on the host\n')
  const listed = await two.nfs.listAll(bigFh, 4096)
  t.ok(listed.names.includes('host-made'), 'and listed by READDIR')
  t.equal(listed.names.filter((n) => n !== '.' && n !== '..').length, 401)
  await two.close()

  // And once more across a second restart: deleted stays STALE, the new file keeps its handle.
  const three = await serve(t, dir, stateDir)
  t.equal((await three.nfs.getattr(goneFh)).status, S.STALE, 'still STALE after another restart')
  t.equal((await three.nfs.getattr(made.fh ?? Buffer.alloc(0))).status, S.OK, 'the host-made file keeps its handle')
  t.equal((await three.nfs.read(fileFh, 0n, 100)).data?.toString(), 'THE payload\n')
})

t.test('a file recreated on the host under the same name is another object', async (t) => {
  const dir = t.testdir({ f: 'first\n' })
  const stateDir = stateDirFor(t)
  const one = await serve(t, dir, stateDir)
  const old = await one.nfs.walk(one.root, 'f')
  await one.close()
  fs.unlinkSync(join(dir, 'f'))
  fs.writeFileSync(join(dir, 'f'), 'second\n')
  const two = await serve(t, dir, stateDir)
  const fresh = await two.nfs.walk(two.root, 'f')
  const r = await two.nfs.read(old, 0n, 100)
  t.not(r.data?.toString(), 'second\n', 'the old handle never reads the new file')
  if (!fresh.equals(old)) t.equal(r.status, S.STALE, 'the old handle is STALE')
  else t.fail('a new inode (or a reused one with a new birth time) must get a new handle')
  t.equal((await two.nfs.read(fresh, 0n, 100)).data?.toString(), 'second\n')
})
