/*
 * --auto-takeover as processes on one host: `tsnfs serve --standby` (node a),
 * `tsnfs standby --auto-takeover` (node b) and `tsnfs witness` (node w).
 * While the primary runs, the standby stays a standby (it hears the primary,
 * and so does the witness). The primary is SIGKILLed: within the heartbeat
 * timeout plus a probe the standby takes over by itself (epoch 2), and the
 * client's old handles read the stable data there.
 */
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { FILE_SYNC, Nfs3, S } from '../helpers/local.ts'
import { tempDir, tsnfsProcess } from '../helpers/tsnfs-process.ts'
import { serveProcess, tsnfs } from '../cli/cli.ts'
import { freePort } from '../helpers/ports.ts'


t.test('the primary dies; the standby takes over by itself once the witness agrees', async (t) => {
  const exportPath = tempDir(t, 'tsnfs-auto-')
  const conf = tempDir(t, 'tsnfs-auto-conf-')
  writeFileSync(join(conf, 'primary'), `${exportPath} *(rw,insecure,no_root_squash,backend=memory)\n`)
  writeFileSync(join(conf, 'standby'), `${exportPath} *(rw,insecure,no_root_squash)\n`)
  // The standby and the witness name the primary by its NFS port, known before it starts.
  const nfsPort = await freePort()
  const witnessPort = await freePort()
  const timing = ['--heartbeat', '200', '--heartbeat-timeout', '1500']

  const standby = tsnfsProcess(t, [
    'standby', '--listen', '127.0.0.1:0', '--exports', join(conf, 'standby'), '--state-dir', tempDir(t, 'tsnfs-auto-b-'), '--port', '0', '--host', '127.0.0.1', '--node', 'b',
    '--auto-takeover', '--primary', `a=127.0.0.1:${nfsPort}`, '--witness', `w=127.0.0.1:${witnessPort}`, ...timing, '--log-level', 'debug',
  ])
  const standbyPort = Number((await standby.waitFor(/replication on [^\s]+:(\d+),/))[1])
  const primary = await serveProcess(t, [
    '--exports', join(conf, 'primary'), '--port', String(nfsPort), '--host', '127.0.0.1', '--state-dir', tempDir(t, 'tsnfs-auto-a-'), '--no-lock', '--admin', 'off',
    '--standby', `127.0.0.1:${standbyPort}`, '--sync', '--heartbeat', '200', '--node', 'a',
  ])
  t.equal(primary.port, nfsPort)
  await primary.waitForLog(/standby joined the sync set/)
  const witness = tsnfsProcess(t, ['witness', '--listen', `127.0.0.1:${witnessPort}`, '--primary', `a=127.0.0.1:${nfsPort}`, '--node', 'w', ...timing])
  await witness.waitFor(/tsnfs witness: replication on 127\.0\.0\.1:\d+, watching a/)

  const one = await Nfs3.connect(t, nfsPort)
  const root = await one.mount(exportPath)
  const files = new Map<string, { fh: Buffer; data: Buffer }>()
  for (let i = 0; i < 20; i++) {
    const c = await one.create(root, `f${i}`)
    if (c.status !== S.OK || c.fh === undefined) throw new Error(`CREATE f${i}: ${c.status}`)
    const data = Buffer.alloc(1000 + i * 997, i + 1)
    const w = await one.write(c.fh, 0n, data, FILE_SYNC)
    t.equal(w.status, S.OK)
    files.set(`f${i}`, { fh: c.fh, data })
  }
  // Longer than the heartbeat timeout: a standby that hears its primary never takes over.
  await new Promise((r) => setTimeout(r, 2500))
  const before = await tsnfs(['replication', 'status', `127.0.0.1:${standbyPort}`, '--json'])
  t.match(before.stdout, /"role":\s*"standby"/, 'still a standby while the primary lives')
  const ws = await tsnfs(['replication', 'status', `127.0.0.1:${witnessPort}`, '--json'])
  t.match(ws.stdout, /"role":\s*"witness"/, 'the witness reports itself')
  t.match(ws.stdout, /"alive":\s*true/, 'and sees the primary alive')

  const killedAt = Date.now()
  primary.child.kill('SIGKILL')
  await primary.exit
  one.c.close()
  const m = await standby.waitFor(/took over \(epoch (\d+)\): serving NFSv3 \+ MOUNT on TCP and UDP port (\d+)/, 20_000)
  const tookMs = Date.now() - killedAt
  t.equal(m[1], '2', 'a new epoch')
  t.comment(`took over ${tookMs} ms after the kill (heartbeat timeout 1500 ms)`)
  // Silence counts from the last heartbeat heard, which left the primary up to one interval (200 ms)
  // before the kill, and up to one more late when the loaded machine delayed it: the takeover may
  // come that much sooner after the kill, never sooner still.
  t.ok(tookMs >= 1500 - 2 * 200, `not before the heartbeat timeout, counted from the last heartbeat (${tookMs} ms)`)
  t.match(standby.stderr(), /automatic takeover \(the witnesses agree the primary is dead\)/)

  const two = await Nfs3.connect(t, Number(m[2]))
  let wrong = 0
  for (const [name, f] of files) {
    const r = await two.read(f.fh, 0n, f.data.length + 1)
    if (r.status !== S.OK || r.data === undefined || !r.data.equals(f.data)) {
      wrong++
      t.comment(`${name}: status ${r.status}`)
    }
  }
  t.equal(wrong, 0, 'every stable byte, through the old handles')
})
