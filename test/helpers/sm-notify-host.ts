/*
 * Run inside a private network namespace by test/interop/sm-notify.test.ts
 * (port 111 there is ours, whatever the host runs): a tsnfs server with the
 * NSM and its portmapper on 127.0.0.3:111, then Debian's sm-notify told to
 * notify 127.0.0.3. Prints one JSON line: the restarts the server heard of,
 * sm-notify's exit code and its log.
 */
import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { parseExports } from '../../server/exports/parse.ts'
import { createServer } from '../../server/index.ts'

const run = promisify(execFile)
const HOST = '127.0.0.3'
const work = mkdtempSync(join(tmpdir(), 'tsnfs-sm-notify-'))
const server = await createServer({
  exports: parseExports('/export *(rw,insecure,backend=memory)\n', 'exports'),
  stateDir: join(work, 'state'),
  port: 0,
  host: HOST,
  portmapPort: 111,
  locking: { nsm: { name: 'srv' } },
})
const restarts: { name: string; state: number; address: string }[] = []
server.locking?.nsm.onPeerRestart((name, state, address) => restarts.push({ name, state, address }))
// statd's record of a monitored host (nfs-utils support/nsm/file.c): addr prog vers proc priv mon_name my_name.
const smDir = join(work, 'statd')
mkdirSync(join(smDir, 'sm'), { recursive: true })
mkdirSync(join(smDir, 'sm.bak'))
writeFileSync(join(smDir, 'sm', HOST), `0300007f 000186b5 00000003 00000010 ${'0'.repeat(32)} ${HOST} localhost\n`)
let code = 0
let log: string
try {
  const r = await run('sm-notify', ['-f', '-d', '-P', smDir, '-v', 'localhost', '-m', '1'], { timeout: 30_000 })
  log = r.stderr
} catch (err) {
  const e = err as { code?: number; stderr?: string; message: string }
  code = typeof e.code === 'number' ? e.code : -1
  log = e.stderr ?? e.message
}
await server.close()
rmSync(work, { recursive: true, force: true })
process.stdout.write(JSON.stringify({ restarts, code, log }) + '\n')
