/*
 * A client process for the replication takeover test in network
 * namespaces (test/e2e/replication-netns.test.ts): run in the client host
 * as `node --import tsx test/helpers/repl-client.ts HOST PORT EXPORT SEED`.
 * It writes and makes stable (FILE_SYNC, or UNSTABLE + COMMIT) until a
 * call fails (the primary died), printing `stable N` as files become
 * stable; then it reconnects to the same HOST:PORT — the service address,
 * which has moved — as a hard mount would, re-sends nothing it had not
 * been told was stable, checks every stable file through its old handle,
 * and prints `RESULT {...}`.
 */
import { RpcTcpClient } from '../../client/rpc/tcp-client.ts'
import { FILE_SYNC, Nfs3, S, UNSTABLE } from './local.ts'
import { prng } from './prng.ts'
import { ROOT_CRED } from './server.ts'

const [host = '', portText = '', exportPath = '', seedText = '1'] = process.argv.slice(2)
const port = Number(portText)
const rnd = prng(Number(seedText))
const stable = new Map<string, { fh: Buffer; data: Buffer }>()

async function connect(timeoutMs: number): Promise<Nfs3> {
  return new Nfs3(await RpcTcpClient.connect(host, port, { cred: ROOT_CRED, timeoutMs }))
}

async function writeUntilFailure(nfs: Nfs3, root: Buffer): Promise<void> {
  for (let n = 0; ; n++) {
    const name = `file-${n}`
    const c = await nfs.create(root, name)
    if (c.status !== S.OK || c.fh === undefined) throw new Error(`CREATE ${name}: ${c.status}`)
    let data = Buffer.alloc(0)
    const pieces = 1 + Math.floor(rnd() * 3)
    for (let p = 0; p < pieces; p++) {
      const piece = Buffer.alloc(1 + Math.floor(rnd() * 30_000), (n * 7 + p) & 0xff)
      const how = rnd() < 0.5 ? FILE_SYNC : UNSTABLE
      const w = await nfs.write(c.fh, BigInt(data.length), piece, how)
      if (w.status !== S.OK) throw new Error(`WRITE ${name}: ${w.status}`)
      if (how === UNSTABLE && (await nfs.commit(c.fh)).status !== S.OK) throw new Error(`COMMIT ${name}`)
      data = Buffer.concat([data, piece])
      stable.set(name, { fh: c.fh, data })
    }
    process.stdout.write(`stable ${stable.size}\n`)
  }
}

async function main(): Promise<void> {
  const one = await connect(3000)
  const root = await one.mount(exportPath)
  const failedAt = Date.now()
  await writeUntilFailure(one, root).catch((err: unknown) => {
    process.stdout.write(`failed ${(err as Error).message.replace(/\n/g, ' ')}\n`)
  })
  one.c.close()
  // Hard-mount behaviour: keep trying the same address until the service answers again.
  let two: Nfs3 | null = null
  const deadline = Date.now() + 90_000
  while (two === null) {
    try {
      const probe = await connect(2000)
      if ((await probe.getattr(root)).status === S.OK) two = probe
      else probe.c.close()
    } catch {
      if (Date.now() > deadline) throw new Error('the service address never answered again')
      await new Promise((r) => setTimeout(r, 200))
    }
  }
  const pauseMs = Date.now() - failedAt
  let stale = 0
  let wrong = 0
  for (const f of stable.values()) {
    const a = await two.getattr(f.fh)
    if (a.status === S.STALE) stale++
    const r = await two.read(f.fh, 0n, f.data.length + 1)
    if (r.status !== S.OK || r.data?.subarray(0, f.data.length).equals(f.data) !== true) wrong++
  }
  const after = await two.create(root, 'after-takeover')
  process.stdout.write(`RESULT ${JSON.stringify({ stable: stable.size, stale, wrong, createAfter: after.status, pauseMs })}\n`)
  two.c.close()
}

main().catch((err: unknown) => {
  process.stdout.write(`ERROR ${(err as Error).stack ?? String(err)}\n`)
  process.exitCode = 1
})
