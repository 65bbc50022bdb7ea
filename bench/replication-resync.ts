/**
 * A full resync's time (server/replication/resync.ts):
 * `npx tsx bench/replication-resync.ts [--dir DIR] [--files N] [--mib M] [--verify]`.
 *
 * Writes a tree of N files (default 10,000) holding M MiB in all (default 200) in 100
 * directories under DIR (default the OS temp dir), then starts a primary (`createServer` over a
 * local export of it, sync mode) and a standby (`StandbyNode`, a local copy in another
 * directory) in this process, over loopback: the standby is new, so the primary resyncs it.
 * Prints the time from the primary's start to the standby caught up, and the resync's
 * counters (directories, files, data and listing bytes). Then a second resync of the same,
 * now unchanged, tree (the standby marked diverged and restarted): listings only.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseExports } from '../server/exports/parse.ts'
import { silentLogger } from '../server/logger.ts'
import { writeAtomic } from '../server/replication/node-state.ts'
import { PrimaryReplication } from '../server/replication/primary.ts'
import { StandbyNode } from '../server/replication/standby-node.ts'
import { createServer } from '../server/index.ts'
import { LocalVfs } from '../vfs/local/local-vfs.ts'

function arg(name: string): string | undefined {
  const at = process.argv.indexOf(name)
  return at > 0 ? process.argv[at + 1] : undefined
}

const files = Number(arg('--files') ?? 10_000)
const mib = Number(arg('--mib') ?? 200)
const verify = process.argv.includes('--verify')
const base = mkdtempSync(join(arg('--dir') ?? tmpdir(), 'tsnfs-bench-resync-'))
const exportPath = join(base, 'export')
const copy = join(base, 'copy')

async function main(): Promise<void> {
  mkdirSync(exportPath)
  mkdirSync(copy)
  const per = Math.floor((mib * 1024 * 1024) / files)
  const data = Buffer.alloc(per, 0x5a)
  for (let d = 0; d < 100; d++) mkdirSync(join(exportPath, `d${String(d)}`))
  for (let i = 0; i < files; i++) {
    data.writeUInt32BE(i, 0)
    writeFileSync(join(exportPath, `d${String(i % 100)}`, `f${String(i)}`), data)
  }
  const exportsText = `${exportPath} *(rw,insecure,no_root_squash)\n`
  const standbyState = join(base, 'standby-state')
  const openStandby = (port: number): Promise<StandbyNode> => StandbyNode.open({
    stateDir: standbyState,
    node: 'standby',
    listen: { host: '127.0.0.1', port },
    exports: parseExports(exportsText, 'exports'),
    serve: { port: 0, host: '127.0.0.1', locking: false },
    log: silentLogger,
    backends: new Map([['local', (exp, ctx) => new LocalVfs({ root: copy, stateDir: join(ctx.stateDir, 'local', String(exp.id)) })]]),
  })
  let standby = await openStandby(0)
  const port = standby.port
  const t0 = performance.now()
  const repl = await PrimaryReplication.open({ stateDir: join(base, 'primary-state'), cluster: 'tsnfs', node: 'primary', standbys: [{ host: '127.0.0.1', port }], mode: 'sync', resyncVerify: verify, log: silentLogger })
  const server = await createServer({ exports: parseExports(exportsText, 'exports'), stateDir: join(base, 'primary-state'), port: 0, host: '127.0.0.1', locking: false, replication: repl })
  const done = async (count: number): Promise<number> => {
    for (;;) {
      const p = repl.view().peers[0]
      if (p?.resync?.count === count && !p.resync.running && p.state === 'streaming') return performance.now()
      await new Promise((r) => setTimeout(r, 20))
    }
  }
  const t1 = await done(1)
  const first = repl.view().peers[0]?.resync
  console.log(`resync of a new standby: ${files} files, ${mib} MiB: ${((t1 - t0) / 1000).toFixed(1)} s`, JSON.stringify(first))
  await standby.close()
  const id = repl.view().positions[0]?.exportId ?? 0
  await writeAtomic(join(standbyState, 'replication'), `resync-${String(id)}`, 'bench\n')
  const t2 = performance.now()
  standby = await openStandby(port)
  const t3 = await done(2)
  console.log(`resync of the unchanged tree: ${((t3 - t2) / 1000).toFixed(1)} s`, JSON.stringify(repl.view().peers[0]?.resync))
  await server.close()
  await standby.close()
}

main()
  .finally(() => {
    rmSync(base, { recursive: true, force: true })
  })
  .catch((err: unknown) => {
    console.error(err)
    process.exitCode = 1
  })
