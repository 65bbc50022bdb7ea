/*
 * A job's posts that never reach it (dma/ndmp/lost-posts.ts): our NDMP server behind a relay that
 * drops the server's NOTIFY posts of some codes. A backup whose NOTIFY_DATA_HALTED and
 * NOTIFY_MOVER_HALTED are lost, a restore whose NOTIFY_DATA_HALTED is lost, a tape read whose
 * NOTIFY_MOVER_PAUSED is lost: each ends by the agents' states after a quiet spell (the call
 * timeout), done, where it used to wait for ever. A direct access restore whose NOTIFY_DATA_READ
 * is lost has nothing to go on: it fails with DMA_RESTORE after two quiet looks, also when an
 * earlier read was served. A mover address nobody answers at fails the tape read with its own
 * error, in the call timeout, and so does one at a port no TCP port can be (the wire's is a
 * u_long); a file: backup streaming into such a mover fails with that error rather than wait.
 */
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { connect, createServer, type Socket } from 'node:net'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import type { BackupInfo } from '../../backup/catalog/rows.ts'
import type { PlanFile, RestorePlan } from '../../backup/catalog/plan.ts'
import type { HistoryEntry, JobContext } from '../../dma/drivers/driver.ts'
import { DmaError } from '../../dma/errors.ts'
import { ndmpDriver } from '../../dma/ndmp-job.ts'
import { NdmpTapeSource } from '../../dma/pool/ndmp-tape-source.ts'
import { NdmpRestoreExecutor } from '../../dma/restore/ndmp-executor.ts'
import { parseExport } from '../../dma/schedule/export-spec.ts'
import { startNdmpServer } from '../../server/ndmp/server.ts'
import { MemoryVfs } from '../../vfs/memory/memory-vfs.ts'
import { ndmp4_message as M } from '../../xdr/generated/ndmp4.ts'
import { RecordReader, frameRecord } from '../../xdr/record.ts'
import { mkdirp, writeFile as vfsWrite } from '../backup/helpers.ts'

const TIMEOUT_MS = 300

/** A relay to `port` passing the server's records through `edit` (null: dropped); its port. */
async function relay(t: Test, port: number, edit: (rec: Buffer) => Buffer | null): Promise<number> {
  const sockets = new Set<Socket>()
  const server = createServer((client) => {
    const up = connect(port, '127.0.0.1')
    sockets.add(client).add(up)
    const reader = new RecordReader(32 * 1024 * 1024)
    client.pipe(up)
    up.on('data', (chunk: Buffer) => {
      for (const rec of reader.push(chunk)) {
        const out = edit(rec)
        if (out !== null) client.write(Buffer.concat([frameRecord([out]), out]))
      }
    })
    for (const s of [client, up]) s.on('error', () => undefined).on('close', () => { client.destroy(); up.destroy() })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { for (const s of sockets) s.destroy(); server.close() })
  return (server.address() as { port: number }).port
}

/** A relay that drops the server's posts (requests) whose code is in `drop`, but the first `keep` of them. */
async function dropping(t: Test, port: number, drop: readonly number[], keep = 0): Promise<{ port: number; dropped: () => number }> {
  let seen = 0
  let dropped = 0
  const p = await relay(t, port, (rec) => {
    if (rec.readUInt32BE(8) !== 0 || !drop.includes(rec.readUInt32BE(12)) || seen++ < keep) return rec
    dropped++
    return null
  })
  return { port: p, dropped: () => dropped }
}

/** Settles `p` within `ms`, or rejects 'hung'. */
function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([p, new Promise<never>((_r, reject) => { timer = setTimeout(() => { reject(new Error('hung')) }, ms) })]).finally(() => { clearTimeout(timer) })
}

function backupCtx(dir: string, port: number, tape: string, history: HistoryEntry[]): JobContext {
  return {
    job: { id: 'j', name: 'manual', export: `127.0.0.1:${port}:/mem`, pool: dir, level: 0, state: 'running', createdAt: '', tapes: [], bytes: 0, files: 0 },
    spec: parseExport(`127.0.0.1:${port}:/mem`),
    exclude: [],
    tape: { first: () => Promise.resolve({ label: tape, path: join(dir, tape), capacity: 0 }), next: () => Promise.reject(new Error('one tape')), wrote: () => Promise.resolve() },
    signal: new AbortController().signal,
    log: () => undefined,
    file: (e) => { history.push(e) },
    progress: () => undefined,
  }
}

t.test('lost posts: the states end the jobs', async (t) => {
  t.setTimeout(90_000)
  const dir = t.testdir({ state: { 'ndmp-auth': '* dma secret md5\n' }, B: '', R: '' })
  const vfs = new MemoryVfs({})
  await mkdirp(vfs, 'docs')
  await vfsWrite(vfs, 'docs/b.bin', Buffer.alloc(30_000, 7))
  await mkdirp(vfs, 'r')
  const server = await startNdmpServer({ port: 0, host: '127.0.0.1', credentials: new Map([['dma', 'secret']]), exports: () => [{ path: '/mem', backend: 'memory', vfs, root: vfs.root() }], tapes: [join(dir, 'B'), join(dir, 'R')].map((p) => ({ name: p, path: p })), stateDir: join(dir, 'srv') })
  t.teardown(() => server.close())
  const state = join(dir, 'state')
  const driver = ndmpDriver(state, { timeoutMs: TIMEOUT_MS })
  const history: HistoryEntry[] = []
  await driver.backup(backupCtx(dir, server.port, 'R', history))

  const halts = await dropping(t, server.port, [M.NDMP4_NOTIFY_DATA_HALTED, M.NDMP4_NOTIFY_MOVER_HALTED])
  await t.resolves(within(10_000, driver.backup(backupCtx(dir, halts.port, 'B', []))), 'a backup whose halts are lost ends done')
  t.equal(halts.dropped(), 2, 'both halts were dropped')

  const backup = { id: 1, level: 0, jobId: null, tapes: [{ label: 'R', fileNumber: 0, streamOffset: 0n }] } as unknown as BackupInfo
  const restore = (port: number, files: PlanFile[]): Promise<unknown> => {
    const plan = { filesystem: '/mem', atNs: 0n, selection: ['/'], full: files.length === 0, steps: [{ backup, whole: files.length === 0, files }], missing: [] } as unknown as RestorePlan
    return new NdmpRestoreExecutor({ stateDir: state, host: '127.0.0.1', port, filesystem: '/mem', device: () => join(dir, 'R'), timeoutMs: TIMEOUT_MS }).execute(plan, { to: '/mem/r', overwrite: true })
  }
  const dataHalt = await dropping(t, server.port, [M.NDMP4_NOTIFY_DATA_HALTED])
  await t.resolves(within(10_000, restore(dataHalt.port, [])), 'a whole restore whose data halt is lost ends done')
  t.equal(dataHalt.dropped(), 1)

  const paused = await dropping(t, server.port, [M.NDMP4_NOTIFY_MOVER_PAUSED])
  const src = new NdmpTapeSource({ host: '127.0.0.1', port: paused.port, auth: { type: 'md5', user: 'dma', password: 'secret' }, devices: [join(dir, 'R')], timeoutMs: TIMEOUT_MS })
  const read = async (): Promise<number> => {
    let n = 0
    for (let b = await src.read(65536); b !== null; b = await src.read(65536)) n += b.length
    return n
  }
  const n = await within(10_000, read()).finally(() => src.close())
  t.ok(n > 30_000, `the tape read to its end (${n} bytes) though its end-of-data pause was lost`)
  t.ok(paused.dropped() >= 1)

  const node = history.find((e) => e.path === 'b.bin')?.node
  const h = history.find((e) => e.node === node && e.fhInfo !== undefined)
  const file = { path: '/docs/b.bin', fileid: BigInt(node ?? 0), streamOffset: BigInt(h?.fhInfo ?? 0), tapeLabel: 'R', endOffset: null } as unknown as PlanFile
  const reads = await dropping(t, server.port, [M.NDMP4_NOTIFY_DATA_READ])
  const err = await within(10_000, restore(reads.port, [file])).then(() => null, (e: unknown) => e)
  t.ok(err instanceof DmaError && err.code === 'DMA_RESTORE', `a direct access restore whose DATA_READ is lost fails: ${String(err)}`)
  t.ok(reads.dropped() >= 1)

  // The first read served, the next NOTIFY_DATA_READ lost: the served read is no longer looked at as outstanding.
  const second = await dropping(t, server.port, [M.NDMP4_NOTIFY_DATA_READ], 1)
  const err2 = await within(15_000, restore(second.port, [file])).then(() => null, (e: unknown) => e)
  t.ok(err2 instanceof DmaError && err2.code === 'DMA_RESTORE', `a direct access restore whose second DATA_READ is lost fails: ${String(err2)}`)
  t.ok(second.dropped() >= 1)
})

t.test('a tape read whose mover address does not answer', async (t) => {
  const dir = t.testdir({ T: '' })
  const vfs = new MemoryVfs({})
  const server = await startNdmpServer({ port: 0, host: '127.0.0.1', credentials: new Map([['dma', 'secret']]), exports: () => [{ path: '/mem', backend: 'memory', vfs, root: vfs.root() }], tapes: [{ name: join(dir, 'T'), path: join(dir, 'T') }], stateDir: join(dir, 'srv') })
  t.teardown(() => server.close())
  // A port nobody listens on: one from a server closed at once.
  const gone = createServer()
  gone.listen(0, '127.0.0.1')
  await once(gone, 'listening')
  const dead = (gone.address() as { port: number }).port
  gone.close()
  // MOVER_LISTEN's reply (v4): header, error, addr_type, one tcp_addr (ip_addr, port at byte 40).
  const listenAt = (p: number): Promise<number> => relay(t, server.port, (rec) => {
    if (rec.readUInt32BE(8) === 1 && rec.readUInt32BE(12) === M.NDMP4_MOVER_LISTEN && rec.length >= 44) rec.writeUInt32BE(p, 40)
    return rec
  })
  const read = async (port: number): Promise<unknown> => {
    const src = new NdmpTapeSource({ host: '127.0.0.1', port, auth: { type: 'text', user: 'dma', password: 'secret' }, devices: [join(dir, 'T')], timeoutMs: TIMEOUT_MS })
    return within(10_000, src.read(1)).then(() => null, (e: unknown) => e).finally(() => src.close())
  }
  const own = (err: unknown, re: RegExp): boolean => err instanceof Error && Object.getPrototypeOf(err) === Error.prototype && re.test(err.message)
  const refused = await read(await listenAt(dead))
  t.ok(own(refused, /^tape agent 127\.0\.0\.1:\d+: no data connection to the mover at 127\.0\.0\.1:\d+: .*ECONNREFUSED/), `the source's own error: ${String(refused)}`)
  // A port beyond 65535 (the wire's u_long): net.connect threw a RangeError.
  const beyond = await listenAt(70_000)
  const bad = await read(beyond)
  t.ok(own(bad, /^tape agent 127\.0\.0\.1:\d+: the mover listens at port 70000, which is no TCP port$/), `no TCP port: ${String(bad)}`)

  // A file: export streamed by the DMA into that mover: the job fails with the stream's error, where it waited for a halt for ever.
  writeFileSync(join(dir, 'data.bin'), Buffer.alloc(20_000, 1))
  writeFileSync(join(dir, 'ndmp-auth'), '* dma secret text\n')
  const ctx = { ...backupCtx(dir, server.port, 'T', []), spec: parseExport(`file:${join(dir, 'data.bin')}`), tapeAgent: `127.0.0.1:${beyond}` }
  const job = await within(10_000, ndmpDriver(dir, { timeoutMs: TIMEOUT_MS }).backup(ctx)).then(() => null, (e: unknown) => e)
  t.ok(own(job, /^the mover listens at port 70000, which is no TCP port$/), `the backup's own error: ${String(job)}`)
})
