/*
 * Debian's sm-notify (nfs-utils) tells our NSM that its host restarted: it
 * asks our portmapper for 100024 over UDP and sends SM_NOTIFY; the server's
 * onPeerRestart fires with sm-notify's name and state. sm-notify only talks
 * to port 111, so the exchange runs in a private network namespace
 * (unshare -n, as root) where 111 is free whatever this host runs; skipped
 * without root, unshare or sm-notify.
 */
import t from 'tap'
import { execFile, execFileSync } from 'node:child_process'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

const run = promisify(execFile)

function missing(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (a network namespace and port 111)'
  for (const tool of ['sm-notify', 'unshare', 'ip']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' })
    } catch {
      return `needs ${tool}`
    }
  }
  return false
}

t.test('sm-notify reaches our NSM through our portmapper', { skip: missing() }, async (t) => {
  const script = `ip link set lo up && exec "${process.execPath}" --import tsx "${join(ROOT, 'test/helpers/sm-notify-host.ts')}"`
  const { stdout } = await run('unshare', ['-n', '--', 'sh', '-c', script], { cwd: ROOT, timeout: 60_000 })
  const out = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as { restarts: { name: string; state: number; address: string }[]; code: number; log: string }
  t.equal(out.code, 0, 'sm-notify exits 0')
  t.match(out.log, /Host 127\.0\.0\.3 notified successfully/, 'and says the host was notified')
  t.equal(out.restarts.length, 1, 'one restart heard')
  t.match(out.restarts[0], { name: 'localhost', address: '127.0.0.1' })
  t.ok(Number.isInteger(out.restarts[0]?.state) && (out.restarts[0]?.state ?? 0) % 2 === 1, 'an odd state number')
})
