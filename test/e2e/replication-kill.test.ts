/*
 * Issue 15 §7 on one host, as processes: `tsnfs serve --standby --sync` and
 * `tsnfs standby`. A client writes and makes stable (FILE_SYNC, or UNSTABLE
 * then COMMIT) without pause; the primary is SIGKILLed at a random moment
 * (printed seed); `tsnfs replication takeover` moves the service to the
 * standby; the client goes on there with its old handles: no ESTALE, and
 * every byte it had made stable is there.
 */
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { FILE_SYNC, Nfs3, S, UNSTABLE } from '../helpers/local.ts'
import { prng } from '../helpers/prng.ts'
import { standbyProcess, tempDir } from '../helpers/tsnfs-process.ts'
import { serveProcess, tsnfs } from '../cli/cli.ts'

interface Stable {
  fh: Buffer
  data: Buffer
}

t.test('the primary is SIGKILLed mid-workload; after the takeover every stable byte is there and no handle is stale', async (t) => {
  const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 1_000_000)
  t.comment(`seed ${seed}`)
  const rnd = prng(seed)
  const exportPath = tempDir(t, 'tsnfs-kill-')
  const primaryState = tempDir(t, 'tsnfs-kill-a-')
  const standbyState = tempDir(t, 'tsnfs-kill-b-')
  const conf = tempDir(t, 'tsnfs-kill-conf-')
  // The primary keeps the data in memory (it dies with it); the standby in a local directory.
  writeFileSync(join(conf, 'primary'), `${exportPath} *(rw,insecure,no_root_squash,backend=memory)\n`)
  writeFileSync(join(conf, 'standby'), `${exportPath} *(rw,insecure,no_root_squash)\n`)

  const standby = await standbyProcess(t, ['--listen', '127.0.0.1:0', '--exports', join(conf, 'standby'), '--state-dir', standbyState, '--port', '0', '--host', '127.0.0.1', '--node', 'b'])
  const primary = await serveProcess(t, [
    '--exports', join(conf, 'primary'), '--port', '0', '--host', '127.0.0.1', '--state-dir', primaryState, '--no-lock', '--admin', 'off',
    '--standby', `127.0.0.1:${standby.port}`, '--sync', '--heartbeat', '200', '--node', 'a',
  ])
  await primary.waitForLog(/standby joined the sync set/)

  const one = await Nfs3.connect(t, primary.port)
  const root = await one.mount(exportPath)
  const stable = new Map<string, Stable>()
  const killAfterMs = 300 + Math.floor(rnd() * 1500)
  t.comment(`SIGKILL after ${killAfterMs} ms`)
  // The kill comes from a timer, so it lands wherever the client is: usually mid-request.
  let killedAt: number | null = null
  setTimeout(() => {
    primary.child.kill('SIGKILL')
    killedAt = Date.now()
  }, killAfterMs)
  const killed = (): boolean => killedAt !== null
  let n = 0
  // One writer: each file is created, written in pieces and made stable; only what a reply promised stable counts.
  while (!killed()) {
    const name = `file-${n++}`
    try {
      const c = await one.create(root, name)
      if (c.status !== S.OK || c.fh === undefined) throw new Error(`CREATE ${name}: ${c.status}`)
      const fh = c.fh
      const pieces = 1 + Math.floor(rnd() * 4)
      let data = Buffer.alloc(0)
      for (let p = 0; p < pieces; p++) {
        const piece = Buffer.alloc(1 + Math.floor(rnd() * 40_000), (n * 7 + p) & 0xff)
        const how = rnd() < 0.5 ? FILE_SYNC : UNSTABLE
        const w = await one.write(fh, BigInt(data.length), piece, how)
        if (w.status !== S.OK) throw new Error(`WRITE ${name}: ${w.status}`)
        data = Buffer.concat([data, piece])
        if (how === UNSTABLE) {
          const cm = await one.commit(fh)
          if (cm.status !== S.OK) throw new Error(`COMMIT ${name}: ${cm.status}`)
        }
        stable.set(name, { fh, data })
      }
    } catch (err) {
      if (!killed()) throw err
    }
  }
  await primary.exit
  one.c.close()
  t.ok(stable.size > 0, `${stable.size} files made stable before the kill`)

  const took = await tsnfs(['replication', 'takeover', `127.0.0.1:${standby.port}`, '--force'])
  t.equal(took.code, 0, `takeover: ${took.stdout}${took.stderr}`)
  const m = await standby.waitFor(/took over \(epoch (\d+)\): serving NFSv3 \+ MOUNT on TCP and UDP port (\d+)/)
  t.equal(m[1], '2', 'a new epoch')
  const two = await Nfs3.connect(t, Number(m[2]))
  let stale = 0
  let wrong = 0
  for (const [name, f] of stable) {
    const a = await two.getattr(f.fh)
    if (a.status === S.STALE) stale++
    const r = await two.read(f.fh, 0n, f.data.length + 1)
    if (r.status !== S.OK || r.data === undefined || !r.data.subarray(0, f.data.length).equals(f.data)) {
      wrong++
      t.comment(`${name}: status ${r.status}, ${String(r.data?.length)} bytes, expected ${f.data.length}`)
    }
  }
  t.equal(stale, 0, 'no ESTALE for any handle the client held')
  t.equal(wrong, 0, 'every stable byte is on the new primary')
  const after = await two.create(root, 'after-takeover')
  t.equal(after.status, S.OK, 'the new primary takes writes through the old root handle')
  const status = await tsnfs(['replication', 'status', `127.0.0.1:${standby.port}`, '--json'])
  t.match(status.stdout, /"role":\s*"primary"/, 'the standby reports itself primary')

  // The old primary restarted with its old command line: fenced at start, it never serves.
  const again = await tsnfs([
    'serve', '--exports', join(conf, 'primary'), '--port', '0', '--host', '127.0.0.1', '--state-dir', primaryState, '--no-lock', '--admin', 'off',
    '--standby', `127.0.0.1:${standby.port}`, '--sync', '--node', 'a',
  ], { timeoutMs: 20_000 })
  t.not(again.code, 0, 'the restarted former primary exits')
  t.match(again.stderr, /a standby serves epoch 2, above this node's 1 .*fenced/, again.stderr)
  t.notMatch(again.stdout, /serving NFSv3/, 'it never served')
})
