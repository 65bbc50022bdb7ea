/*
 * Issue 15 §7 across hosts: primary, standby and client each in a network
 * namespace of its own (test/helpers/netns.ts), the client talking to the
 * service address only. The client writes and makes stable without pause;
 * the primary is SIGKILLed at a random moment (printed seed) and its host
 * cut off; `tsnfs replication takeover` (from the client's host) makes the
 * standby primary, which takes the address (--vip, gratuitous ARP). The
 * client, reconnecting to the same address as a hard mount does, finds every
 * stable byte through its old handles, with no ESTALE.
 */
import t from 'tap'
import type { Test } from 'tap'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { findCommand } from '../../server/replication/address.ts'
import { ROOT, TSNFS_ARGS } from '../cli/cli.ts'
import { createLab, labSkipReason } from '../helpers/netns.ts'
import { prng } from '../helpers/prng.ts'

function tempDir(t: Test, prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => {
    rmSync(d, { recursive: true, force: true })
  })
  return d
}

/** Resolves with the first match of `re` in the stream's text so far or to come. */
function waitOutput(child: ChildProcess, which: 'stdout' | 'stderr', re: RegExp, ms: number): Promise<RegExpExecArray> {
  const stream = child[which]
  if (stream === null) return Promise.reject(new Error(`no ${which}`))
  let text = ''
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer): void => {
      text += d.toString()
      const m = re.exec(text)
      if (m !== null) {
        done()
        resolve(m)
      }
    }
    const onExit = (): void => {
      done()
      reject(new Error(`exited before ${String(re)}: ${text}`))
    }
    const timer = setTimeout(() => {
      done()
      reject(new Error(`no ${String(re)} on ${which} within ${ms} ms: ${text.slice(-2000)}`))
    }, ms)
    const done = (): void => {
      clearTimeout(timer)
      stream.off('data', onData)
      child.off('exit', onExit)
    }
    stream.on('data', onData)
    child.once('exit', onExit)
  })
}

// Three tsnfs processes start in the lab (tsx when dist/ is stale): give the file room under load.
t.setTimeout(300_000)

const skip = labSkipReason() ?? (findCommand('arping') === null ? 'needs arping (Debian iputils-arping)' : null)

t.test('primary killed, standby takes the service address: the client goes on with no ESTALE and every stable byte', { skip: skip ?? false }, async (t) => {
  const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 1_000_000)
  t.comment(`seed ${seed}`)
  const rnd = prng(seed)
  const lab = await createLab({ hosts: ['primary', 'standby', 'client'], subnet: '10.233.0.0/24' })
  const vip = lab.spareAddress(0)
  const exportPath = tempDir(t, 'tsnfs-netns-')
  const conf = tempDir(t, 'tsnfs-netns-conf-')
  const stateA = tempDir(t, 'tsnfs-netns-a-')
  const stateB = tempDir(t, 'tsnfs-netns-b-')
  // Registered after the directories so it runs before their removal (tap runs teardowns last
  // registered first): the processes in the lab still write to them until it is destroyed.
  t.teardown(() => lab.destroy())
  writeFileSync(join(conf, 'primary'), `${exportPath} *(rw,insecure,no_root_squash,backend=memory)\n`)
  writeFileSync(join(conf, 'standby'), `${exportPath} *(rw,insecure,no_root_squash)\n`)
  const replAt = `${lab.address('standby')}:7000`
  const tsnfs = (...args: string[]): string[] => [process.execPath, ...TSNFS_ARGS, ...args]

  const standby = lab.spawn('standby', tsnfs('standby', '--listen', replAt, '--exports', join(conf, 'standby'), '--state-dir', stateB, '--port', '2049',
    '--node', 'b', '--vip', `${vip}/${String(lab.prefix)}`, '--vip-dev', 'eth0'), { cwd: ROOT })
  await waitOutput(standby, 'stdout', /replication on/, 60_000)
  // The service address starts on the primary's host (as keepalived or an operator put it there).
  await lab.addAddress('primary', vip)
  const primary = lab.spawn('primary', tsnfs('serve', '--exports', join(conf, 'primary'), '--port', '2049', '--state-dir', stateA, '--no-lock', '--admin', 'off',
    '--standby', replAt, '--sync', '--heartbeat', '200', '--node', 'a'), { cwd: ROOT })
  await waitOutput(primary, 'stderr', /standby joined the sync set/, 60_000)

  const client = lab.spawn('client', [process.execPath, '--import', 'tsx', join(ROOT, 'test/helpers/repl-client.ts'), vip, '2049', exportPath, String(seed)], { cwd: ROOT })
  const result = waitOutput(client, 'stdout', /RESULT (\{.*\})|ERROR (.*)/, 180_000)
  const killAt = 3 + Math.floor(rnd() * 12)
  t.comment(`SIGKILL once ${killAt} files are stable`)
  await waitOutput(client, 'stdout', new RegExp(`stable ${killAt}\\n`), 60_000)
  primary.kill('SIGKILL')
  await lab.linkDown('primary')
  const took = await lab.exec('client', tsnfs('replication', 'takeover', replAt, '--force'), { timeoutMs: 60_000 })
  t.match(took.stdout, /took over/, 'TAKEOVER answered')
  const m = await result
  t.equal(m[2], undefined, `the client did not fail: ${m[2] ?? ''}`)
  const r = JSON.parse(m[1] ?? '{}') as { stable: number; stale: number; wrong: number; createAfter: number; pauseMs: number }
  t.comment(`pause seen by the client: ${r.pauseMs} ms`)
  t.ok(r.stable >= killAt, `${r.stable} files stable before the kill`)
  t.equal(r.stale, 0, 'no ESTALE')
  t.equal(r.wrong, 0, 'every stable byte on the new primary')
  t.equal(r.createAfter, 0, 'the new primary takes writes')
})
