/*
 * A direct access restore through ndmjob's tape agent (issue 16): a level-0 backup by our DMA with
 * `ndmjob -o daemon` as the tape agent (three-way, our server as data agent over TCP), then
 * `restoreExport` of one file by direct access with a 20 s abort. ndmjob's mover serves only
 * MOVER_READs of whole records from a record boundary (ndma_tape.c ndmta_write_quantum,
 * bench/README.md); our data service asks it so (server/ndmp/data/range-input.ts). Before that,
 * the executor saw the stall after 5 s and restored the file from the stream's start. Capture the
 * control connection with
 *   tshark -i lo -f 'tcp port 41999' -w /tmp/dar.pcap
 * and run `PROBE_PORT=41999 npx tsx bench/backup-dar-ndmjob.ts`. The trace is in bench/README.md.
 * ndmjob's -d/-L give no log in daemon mode (its stdout and stderr stay empty).
 */
import { spawn } from 'node:child_process'
import { mkdirSync, openSync, rmSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { driversFor } from '../dma/drivers/select.ts'
import { DmaService } from '../dma/jobs/service.ts'
import { Pool } from '../dma/pool/pool.ts'
import { restoreExport } from '../dma/restore/run.ts'
import { parseExport } from '../dma/schedule/export-spec.ts'
import { startNdmpServer } from '../server/ndmp/server.ts'
import { MemoryVfs } from '../vfs/memory/memory-vfs.ts'
import { mkdirp, writeFile as vfsWrite } from '../test/backup/helpers.ts'
const dir = join(tmpdir(), `tsnfs-dar-ndmjob-${process.pid}`)
rmSync(dir, { recursive: true, force: true })
mkdirSync(dir, { recursive: true })
const pool = join(dir, 'pool')
await Pool.label(pool, 'W1', { capacity: 64 * 1024 * 1024 })
const v = new MemoryVfs(); const exp = { path: '/exp', backend: 'memory' as const, vfs: v, root: v.root() }
const d = new MemoryVfs(); const dest = { path: '/r', backend: 'memory' as const, vfs: d, root: d.root() }
await mkdirp(v, 'a'); await vfsWrite(v, 'big.bin', Buffer.alloc(300_000, 7)); await vfsWrite(v, 'a/one.txt', 'one\n'); await vfsWrite(v, 'zz-last.txt', 'last\n')
const server = await startNdmpServer({ port: 0, host: '127.0.0.1', credentials: new Map([['ndmp', 'ndmp']]), exports: () => [exp, dest], stateDir: join(dir, 'srv') })
const port = Number(process.env['PROBE_PORT'] ?? 41999)
const child = spawn('/usr/lib/amanda/ndmjob', ['-o', 'daemon', '-p', String(port), '-d9', '-v'], { cwd: dir, stdio: ['ignore', openSync(join(dir, 'ndmjob.out'), 'w'), openSync(join(dir, 'ndmjob.err'), 'w')] })
await new Promise((r) => setTimeout(r, 1000))
const state = join(dir, 'state')
const service = await DmaService.open(state, driversFor(state))
await writeFile(join(state, 'ndmp-auth'), '* ndmp ndmp md5\n')
const exportText = `127.0.0.1:${server.port}:/exp`
const tapeAgent = `127.0.0.1:${port}`
const job = await service.wait((await service.start({ name: 'manual', spec: parseExport(exportText), tapeAgent, pool, level: 0 })).id)
console.log('backup', job.state, job.error)
const ac = new AbortController()
const t0 = Date.now()
setTimeout(() => { ac.abort() }, 20_000)
const one = await restoreExport({ stateDir: state, export: exportText, atNs: BigInt(Date.now() + 60_000) * 1_000_000n, paths: ['/zz-last.txt'], to: '/r/one', overwrite: false, tapeAgent, signal: ac.signal, onLog: (l, m) => { console.log(l, m) } })
console.log('restore', one.job.state, one.job.error, one.reads, one.bytesMoved, `${Date.now() - t0} ms`)
child.kill('SIGKILL')
await server.close()
rmSync(dir, { recursive: true, force: true })
process.exit(0)
