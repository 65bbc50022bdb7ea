/*
 * Issue 15 end to end, in one process: a primary (`serve --standby`) in sync
 * mode and a standby (`tsnfs standby`), both over real sockets. A client
 * works through the primary; the primary goes away; the standby takes over;
 * the client's old file handles, file ids, READDIR cookies and every byte it
 * had made stable answer the same on the new primary, and its write verifier
 * is new (RFC 1813 §3.3.7: the client must re-send unstable writes).
 */
import t from 'tap'
import type { Test } from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseExports } from '../../server/exports/parse.ts'
import { silentLogger } from '../../server/logger.ts'
import { PrimaryReplication } from '../../server/replication/primary.ts'
import { StandbyNode } from '../../server/replication/standby-node.ts'
import { createServer } from '../../server/index.ts'
import { FILE_SYNC, Nfs3, S, UNSTABLE } from '../helpers/local.ts'
import { prng } from '../helpers/prng.ts'

function tempDir(t: Test, prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => {
    rmSync(d, { recursive: true, force: true })
  })
  return d
}

async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** One export line; a memory export's path is only its name, a local one's is the directory. */
/** Every name after `cookie`, page by page. */
async function namesFrom(nfs: Nfs3, dir: Buffer, cookie: bigint): Promise<string[]> {
  const out: string[] = []
  for (;;) {
    const r = await nfs.readdir(dir, cookie, Buffer.alloc(8), 1024)
    if (r.status !== S.OK) throw new Error(`READDIR: status ${r.status}`)
    out.push(...(r.names ?? []))
    const last = r.cookies?.at(-1)
    if (r.eof === true || last === undefined) return out
    cookie = last
  }
}

const EXPORTS = (path: string, backend: 'memory' | 'local'): string => `${path} *(rw,insecure,no_root_squash${backend === 'memory' ? ',backend=memory' : ''})\n`

// One machine, one path: the export id is the path's, so both nodes export the same path. Local
// on one side and memory on the other keeps their trees apart (and shows backends may differ).
for (const [primaryBackend, standbyBackend] of [['memory', 'local'], ['local', 'memory']] as const) {
  t.test(`${primaryBackend} primary, ${standbyBackend} standby: the takeover keeps handles, file ids, cookies and stable bytes`, async (t) => {
    const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 1_000_000)
    t.comment(`seed ${seed}`)
    const rnd = prng(seed)
    const primaryState = tempDir(t, 'tsnfs-primary-')
    const standbyState = tempDir(t, 'tsnfs-standby-')
    const exportPath = tempDir(t, 'tsnfs-repl-')

    const standby = await StandbyNode.open({
      stateDir: standbyState,
      node: 'standby-b',
      listen: { host: '127.0.0.1', port: 0 },
      exports: parseExports(EXPORTS(exportPath, standbyBackend), 'exports'),
      serve: { port: 0, host: '127.0.0.1', locking: false },
      log: silentLogger,
    })
    t.teardown(() => standby.close())

    const repl = await PrimaryReplication.open({
      stateDir: primaryState,
      cluster: 'tsnfs',
      node: 'primary-a',
      standbys: [{ host: '127.0.0.1', port: standby.port }],
      mode: 'sync',
      heartbeatMs: 100,
      timeoutMs: 2000,
      log: silentLogger,
    })
    const primary = await createServer({
      exports: parseExports(EXPORTS(exportPath, primaryBackend), 'exports'),
      stateDir: primaryState,
      port: 0,
      host: '127.0.0.1',
      locking: false,
      replication: repl,
    })
    let primaryClosed = false
    t.teardown(async () => {
      if (!primaryClosed) await primary.close()
    })
    await until('the standby to be attached', () => repl.view().peers.some((p) => p.alive))

    const one = await Nfs3.connect(t, primary.port)
    const root = await one.mount(exportPath)
    t.ok(await one.mkdir(root, 'd').then((r) => r.status === S.OK), 'mkdir through the primary')
    const d = await one.walk(root, 'd')
    const files: { name: string; fh: Buffer; data: Buffer }[] = []
    for (let i = 0; i < 40; i++) {
      const name = `f-${String(i).padStart(3, '0')}-${Math.floor(rnd() * 1e6).toString(36)}`
      const c = await one.create(d, name)
      t.equal(c.status, S.OK)
      const fh = c.fh ?? Buffer.alloc(0)
      const data = Buffer.alloc(1 + Math.floor(rnd() * 70_000), i + 1)
      // Half FILE_SYNC, half UNSTABLE followed by COMMIT: both are stable once acknowledged.
      const w = await one.write(fh, 0n, data, i % 2 === 0 ? FILE_SYNC : UNSTABLE)
      t.equal(w.status, S.OK)
      files.push({ name, fh, data })
    }
    for (const f of files.filter((_, i) => i % 2 === 1)) t.equal((await one.commit(f.fh)).status, S.OK)
    t.equal(await one.remove(d, files[0]?.name ?? ''), S.OK, 'a remove is replicated too')
    const removed = files.shift()
    t.equal(await one.rename(d, files[0]?.name ?? '', d, 'renamed'), S.OK)
    const renamedFrom = files[0]
    if (renamedFrom !== undefined) renamedFrom.name = 'renamed'

    const before = new Map<string, bigint>()
    for (const f of files) before.set(f.name, (await one.getattr(f.fh)).fileid ?? -1n)
    const pageBefore = await one.readdir(d, 0n, Buffer.alloc(8), 1024)
    t.equal(pageBefore.status, S.OK)
    const verfBefore = (await one.commit(files[1]?.fh ?? Buffer.alloc(0))).verf

    // The primary goes away (everything above was acknowledged as stable, so the standby has it).
    one.c.close()
    await primary.close()
    primaryClosed = true
    const took = await standby.service.takeover({ force: true })
    t.equal(took.status, 0, 'TAKEOVER: REPL_OK')
    const server = standby.server
    t.ok(server !== null, 'the standby serves NFS after the takeover')
    if (server === null) return

    const two = await Nfs3.connect(t, server.port)
    t.ok((await two.mount(exportPath)).equals(root), 'MOUNT gives the same root handle')
    t.ok((await two.lookup(root, 'd')).fh?.equals(d) === true, 'LOOKUP gives the same handle')
    for (const f of files) {
      const a = await two.getattr(f.fh)
      t.equal(a.status, S.OK, `${f.name}: the old handle answers`)
      t.equal(a.fileid, before.get(f.name), `${f.name}: the same file id`)
      const r = await two.read(f.fh, 0n, 80_000)
      t.ok(r.data?.equals(f.data) === true, `${f.name}: every stable byte`)
    }
    if (removed !== undefined) t.equal((await two.getattr(removed.fh)).status, S.STALE, 'the removed file stays removed')
    const pageAfter = await two.readdir(d, 0n, Buffer.alloc(8), 1024)
    t.strictSame(pageAfter.names, pageBefore.names, 'the same READDIR page')
    t.strictSame(pageAfter.cookies, pageBefore.cookies, 'the same cookies')
    t.strictSame(pageAfter.fileids, pageBefore.fileids, 'the same file ids in READDIR')
    const mid = pageBefore.cookies?.at(-1)
    if (mid !== undefined && pageBefore.eof !== true) {
      const rest = await namesFrom(two, d, mid)
      const all = await two.listAll(d)
      t.strictSame([...(pageBefore.names ?? []), ...rest], all.names, 'a listing resumed from a cookie of the old primary neither repeats nor skips')
    }
    const verfAfter = (await two.commit(files[1]?.fh ?? Buffer.alloc(0))).verf
    t.ok(verfAfter !== undefined && verfBefore !== undefined && !verfAfter.equals(verfBefore), 'a new write verifier')
    const c = await two.create(d, 'after-takeover')
    t.equal(c.status, S.OK, 'the new primary takes writes')
  })
}
