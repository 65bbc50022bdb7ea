/*
 * A client process for the replication tests in network namespaces
 * (test/e2e/replication-netns-*.test.ts), run in the client host as
 * `node --import tsx test/helpers/repl-writer.ts HOST PORT EXPORT SEED`.
 * Unlike repl-client.ts it goes on until told `stop` on its stdin: it writes
 * and makes stable (FILE_SYNC, or UNSTABLE + COMMIT) file after file,
 * printing `stable N MS` as each file becomes stable (MS: the slowest stable
 * reply for that file, so a test sees a reply that waited for a standby).
 * A failed call (the server died, the address moved) prints `failed ...`;
 * it then reconnects to the same HOST:PORT as a hard mount would, prints
 * `reconnected`, and writes new files (a new generation of names), never
 * re-sending what it was not told was stable. On `stop` it finishes the file
 * in hand, checks every stable file through its handle (ESTALE, content)
 * and prints `RESULT {...}` with each stable file's size and SHA-256, for
 * the test to find on every node's disk.
 */
import { createHash } from 'node:crypto'
import { createInterface } from 'node:readline'
import { RpcTcpClient } from '../../client/rpc/tcp-client.ts'
import { FILE_SYNC, Nfs3, S, UNSTABLE } from './local.ts'
import { prng } from './prng.ts'
import { ROOT_CRED } from './server.ts'

const [host = '', portText = '', exportPath = '', seedText = '1'] = process.argv.slice(2)
const port = Number(portText)
const rnd = prng(Number(seedText))
const stable = new Map<string, { fh: Buffer; data: Buffer }>()
let stopping = false
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() === 'stop') stopping = true
})

// Longer than a sync reply may wait for a standby to be dropped (the tests' heartbeat timeout).
const CALL_TIMEOUT_MS = 20_000

async function connect(timeoutMs: number): Promise<Nfs3> {
  return new Nfs3(await RpcTcpClient.connect(host, port, { cred: ROOT_CRED, timeoutMs }))
}

/** Time one call; the caller keeps the slowest. */
async function timed<T>(call: () => Promise<T>, slowest: { ms: number }): Promise<T> {
  const start = Date.now()
  const r = await call()
  slowest.ms = Math.max(slowest.ms, Date.now() - start)
  return r
}

async function writeUntilStopOrFailure(nfs: Nfs3, root: Buffer, gen: number): Promise<void> {
  for (let n = 0; !stopping; n++) {
    const name = `g${String(gen)}-f${String(n)}`
    const slowest = { ms: 0 }
    const c = await timed(() => nfs.create(root, name), slowest)
    if (c.status !== S.OK || c.fh === undefined) throw new Error(`CREATE ${name}: ${String(c.status)}`)
    const fh = c.fh
    let data = Buffer.alloc(0)
    const pieces = 1 + Math.floor(rnd() * 3)
    for (let p = 0; p < pieces; p++) {
      const piece = Buffer.alloc(1 + Math.floor(rnd() * 30_000), (n * 7 + p + gen * 31) & 0xff)
      const how = rnd() < 0.5 ? FILE_SYNC : UNSTABLE
      const w = await timed(() => nfs.write(fh, BigInt(data.length), piece, how), slowest)
      if (w.status !== S.OK) throw new Error(`WRITE ${name}: ${String(w.status)}`)
      if (how === UNSTABLE) {
        const cm = await timed(() => nfs.commit(fh), slowest)
        if (cm.status !== S.OK) throw new Error(`COMMIT ${name}: ${String(cm.status)}`)
      }
      data = Buffer.concat([data, piece])
      stable.set(name, { fh, data })
    }
    process.stdout.write(`stable ${String(stable.size)} ${String(slowest.ms)}\n`)
  }
}

async function reconnect(root: Buffer): Promise<Nfs3> {
  const deadline = Date.now() + 120_000
  for (;;) {
    try {
      const probe = await connect(2000)
      if ((await probe.getattr(root)).status === S.OK) return probe
      probe.c.close()
    } catch {
      /* nobody answers at the address yet */
    }
    if (Date.now() > deadline) throw new Error('the service address never answered again')
    await new Promise((r) => setTimeout(r, 200))
  }
}

async function main(): Promise<void> {
  let nfs = await connect(CALL_TIMEOUT_MS)
  const root = await nfs.mount(exportPath)
  process.stdout.write('mounted\n')
  for (let gen = 0; !stopping; gen++) {
    try {
      await writeUntilStopOrFailure(nfs, root, gen)
    } catch (err) {
      process.stdout.write(`failed ${(err as Error).message.replace(/\n/g, ' ')}\n`)
      nfs.c.close()
      const probe = await reconnect(root)
      probe.c.close()
      nfs = await connect(CALL_TIMEOUT_MS)
      process.stdout.write('reconnected\n')
    }
  }
  let stale = 0
  let wrong = 0
  const files: Record<string, { size: number; sha256: string }> = {}
  for (const [name, f] of stable) {
    if ((await nfs.getattr(f.fh)).status === S.STALE) stale++
    const r = await nfs.read(f.fh, 0n, f.data.length + 1)
    // A piece after the last stable one may have landed before a failure: the stable prefix counts.
    if (r.status !== S.OK || r.data?.subarray(0, f.data.length).equals(f.data) !== true) wrong++
    files[name] = { size: f.data.length, sha256: createHash('sha256').update(f.data).digest('hex') }
  }
  process.stdout.write(`RESULT ${JSON.stringify({ stable: stable.size, stale, wrong, files })}\n`)
  nfs.c.close()
}

main().catch((err: unknown) => {
  process.stdout.write(`ERROR ${(err as Error).stack ?? String(err)}\n`)
  process.exitCode = 1
})
