/*
 * A former primary rejoins as a standby, and fails back (issue 15 §5), in one
 * process over real sockets and real directories: primary A replicates to
 * standby B in sync mode; A stops; B takes over (epoch 2) and replicates to
 * A's address; A's state directory is refused as a plain standby, then
 * rejoins with `rejoin` (its divergent tail marked for a full resync, its old
 * change log dropped); B's resync makes A's tree match B's (a file only A had
 * goes, a file A changed behind B's back gets B's bytes); B stops; A takes
 * over (epoch 3) and answers every handle the client ever got, with the same
 * fileids and every stably written byte; B rejoins A in turn and converges.
 * Also: a standby that has applied a primary's log, told HELLO by a primary of
 * a higher epoch, reports need_resync (its positions count the old log).
 */
import t from 'tap'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer as netServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { parseExports } from '../../../server/exports/parse.ts'
import { createServer } from '../../../server/index.ts'
import { silentLogger } from '../../../server/logger.ts'
import { NodeState } from '../../../server/replication/node-state.ts'
import { PrimaryReplication } from '../../../server/replication/primary.ts'
import { StandbyNode } from '../../../server/replication/standby-node.ts'
import type { StandbyNodeOptions } from '../../../server/replication/standby-node.ts'
import type { BackendFactory } from '../../../server/backends.ts'
import { LocalVfs } from '../../../vfs/local/local-vfs.ts'
import { FILE_SYNC, Nfs3, S, UNSTABLE } from '../../helpers/local.ts'
import { prng } from '../../helpers/prng.ts'
import { snapshot, until } from './resync-fixtures.ts'

const seed = Number(process.env.REPL_SEED ?? Date.now() % 100_000)
t.comment(`seed ${seed} (REPL_SEED to repeat)`)

async function freePort(): Promise<number> {
  const s = netServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const { port } = s.address() as AddressInfo
  await new Promise((resolve) => s.close(resolve))
  return port
}

/** A node's peer (by replication address) caught up with its own log and streaming. */
function caughtUp(repl: PrimaryReplication | null | undefined, port: number): boolean {
  if (repl === null || repl === undefined) return false
  const v = repl.view()
  const p = v.peers.find((x) => x.address === `127.0.0.1:${String(port)}`)
  const last = v.positions[0]?.applied
  return p !== undefined && p.alive && p.state === 'streaming' && p.resync?.running !== true && p.acked === last
}

interface Held {
  /** Relative to the export. */
  path: string
  fh: Buffer
  fileid: bigint | undefined
  data: Buffer
}

t.test('primary A, standby B; A stops; B takes over; A rejoins as B\'s standby; B stops; A takes over: every stable byte, the same handles and fileids', async (t) => {
  const rnd = prng(seed)
  const dir = t.testdir({ export: {}, copy: {}, conf: {} })
  const exportPath = join(dir, 'export')
  const copy = join(dir, 'copy')
  const aState = join(dir, 'a-state')
  const bState = join(dir, 'b-state')
  const exportsText = `${exportPath} *(rw,insecure,no_root_squash)\n`
  const aPort = await freePort()
  const bPort = await freePort()
  const fast = { heartbeatMs: 100, timeoutMs: 2000 }
  // B's copy: the same export path, another directory.
  const bBackend: ReadonlyMap<string, BackendFactory> = new Map([['local', (exp, ctx) => new LocalVfs({ root: copy, stateDir: join(ctx.stateDir, 'local', String(exp.id)) })]])
  const node = (name: 'a' | 'b', extra: Partial<StandbyNodeOptions> = {}): Promise<StandbyNode> =>
    StandbyNode.open({
      stateDir: name === 'a' ? aState : bState,
      node: name,
      listen: { host: '127.0.0.1', port: name === 'a' ? aPort : bPort },
      exports: parseExports(exportsText, 'exports'),
      serve: { port: 0, host: '127.0.0.1', locking: false },
      log: silentLogger,
      ...(name === 'b' ? { backends: bBackend } : {}),
      asPrimary: { standbys: [{ host: '127.0.0.1', port: name === 'a' ? bPort : aPort }], mode: 'sync', ...fast },
      ...extra,
    })

  let b = await node('b')
  t.teardown(() => b.close().catch(() => undefined))
  const aRepl = await PrimaryReplication.open({ stateDir: aState, cluster: 'tsnfs', node: 'a', standbys: [{ host: '127.0.0.1', port: bPort }], mode: 'sync', log: silentLogger, ...fast })
  const aServer = await createServer({ exports: parseExports(exportsText, 'exports'), stateDir: aState, port: 0, host: '127.0.0.1', locking: false, replication: aRepl })
  t.teardown(() => aServer.close().catch(() => undefined))
  await until('B joins A', () => caughtUp(aRepl, bPort))

  // Epoch 1 on A: files written with FILE_SYNC, and others UNSTABLE then COMMITted.
  const held = new Map<string, Held>()
  const one = await Nfs3.connect(t, aServer.port)
  const root = await one.mount(exportPath)
  const sub = await one.mkdir(root, 'sub')
  if (sub.fh === undefined) return t.fail('MKDIR sub')
  const write = async (nfs: Nfs3, parent: Buffer, name: string, how: 'sync' | 'commit', inSub = false): Promise<void> => {
    const c = await nfs.create(parent, name)
    if (c.fh === undefined) throw new Error(`CREATE ${name}: ${String(c.status)}`)
    const data = Buffer.alloc(1 + Math.floor(rnd() * 20_000))
    for (let i = 0; i < data.length; i += 97) data[i] = Math.floor(rnd() * 256)
    const w = await nfs.write(c.fh, 0n, data, how === 'sync' ? FILE_SYNC : UNSTABLE)
    if (w.status !== S.OK) throw new Error(`WRITE ${name}: ${String(w.status)}`)
    if (how === 'commit' && (await nfs.commit(c.fh)).status !== S.OK) throw new Error(`COMMIT ${name}`)
    const a = await nfs.getattr(c.fh)
    held.set(name, { path: inSub ? join('sub', name) : name, fh: c.fh, fileid: a.fileid, data })
  }
  for (let i = 0; i < 12; i++) await write(one, i % 3 === 0 ? sub.fh : root, `e1-${String(i)}`, i % 2 === 0 ? 'sync' : 'commit', i % 3 === 0)
  // The invariant the rejoin relies on: a stable reply in sync mode waited for B, so B has it now.
  for (const [name, h] of held) {
    const on = readFileSync(join(copy, h.path))
    t.ok(on.equals(h.data), `${name}: on B as soon as its stable reply came`, { diagnostic: false })
  }
  one.c.close()
  await aServer.close()
  t.equal((await NodeState.read(aState))?.role, 'primary', 'A stopped as a primary')

  // A's divergent tail: what B never got (written behind the server's back after the last
  // replicated position, as an unstable write the crash lost would leave it).
  writeFileSync(join(exportPath, 'only-on-a'), 'never replicated')
  const changed = join(exportPath, 'e1-1')
  writeFileSync(changed, Buffer.concat([Buffer.from('diverged'), (held.get('e1-1')?.data ?? Buffer.alloc(0)).subarray(8)]))

  // B takes over (epoch 2) and serves; its sender looks for A at aPort.
  t.equal((await b.service.takeover({ force: true })).status, 0, 'B: TAKEOVER REPL_OK')
  const bServer = b.server
  if (bServer === null) return t.fail('B serves')
  const two = await Nfs3.connect(t, bServer.port)
  t.ok((await two.mount(exportPath)).equals(root), 'B: the same root handle')
  for (let i = 0; i < 6; i++) await write(two, root, `e2-${String(i)}`, i % 2 === 0 ? 'sync' : 'commit')

  // A's state directory is refused as a plain standby; with rejoin it becomes one.
  await t.rejects(node('a'), { message: /state says it is a primary \(epoch 1\); .*start it with --rejoin/ }, 'a primary\'s state needs --rejoin')
  const a = await node('a', { rejoin: true })
  t.teardown(() => a.close().catch(() => undefined))
  t.equal((await NodeState.read(aState))?.role, 'standby', 'A: role standby')
  t.equal(a.server, null, 'A does not serve NFS')
  t.notOk(existsSync(join(aState, 'replication', '1', 'log')), 'A\'s old change log is gone')
  await until('A resynced from B and caught up', () => caughtUp(b.asPrimary, aPort), 30_000)
  const peer = b.asPrimary?.view().peers[0]
  t.equal(peer?.resync?.count, 1, 'one full resync')
  // More on B after A joined, shipped as APPENDs.
  for (let i = 6; i < 10; i++) await write(two, sub.fh, `e2-${String(i)}`, i % 2 === 0 ? 'sync' : 'commit', true)
  await until('A caught up', () => caughtUp(b.asPrimary, aPort))
  t.same(snapshot(exportPath), snapshot(copy), 'A\'s tree is B\'s: the divergent file gone, the changed one restored')
  t.notOk(existsSync(join(exportPath, 'only-on-a')), 'the file only A had is gone')
  two.c.close()

  // B stops; A takes over again (failback, epoch 3).
  await b.close()
  t.equal((await a.service.takeover({ force: true })).status, 0, 'A: TAKEOVER REPL_OK')
  t.equal((await NodeState.read(aState))?.epoch, 3n, 'A serves epoch 3')
  const aAgain = a.server
  if (aAgain === null) return t.fail('A serves')
  const three = await Nfs3.connect(t, aAgain.port)
  t.ok((await three.mount(exportPath)).equals(root), 'A: the same root handle')
  let bad = 0
  for (const [name, h] of held) {
    const g = await three.getattr(h.fh)
    const r = await three.read(h.fh, 0n, h.data.length + 1)
    if (g.status !== S.OK || g.fileid !== h.fileid || r.data?.equals(h.data) !== true) {
      bad++
      t.fail(`${name}: status ${String(g.status)}, fileid ${String(g.fileid)} (was ${String(h.fileid)}), content ${r.data?.equals(h.data) === true ? 'same' : 'differs'}`)
    }
  }
  t.equal(bad, 0, `all ${String(held.size)} files: old handles answer, same fileids, every stable byte`)
  // A new primary's writes still work, and B rejoins A in turn and converges.
  await write(three, root, 'e3-0', 'sync')
  b = await node('b', { rejoin: true })
  await until('B resynced from A and caught up', () => caughtUp(a.asPrimary, bPort), 30_000)
  t.same(snapshot(copy), snapshot(exportPath), 'B\'s tree is A\'s again')
  three.c.close()
})
