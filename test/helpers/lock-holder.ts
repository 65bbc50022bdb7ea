/*
 * A client host in a process of its own, for tests that kill it: mounts the
 * nfs:// URL given as the first argument (its query names the caller, the
 * client address and the lock state directory), takes an exclusive lock on
 * the path in the second argument from byte 0 to the end, prints "locked",
 * and waits to be killed. Run with `node --import tsx`.
 */
import { NfsClient } from '../../client/nfs-client.ts'

const [url, path] = process.argv.slice(2)
if (url === undefined || path === undefined) {
  process.stderr.write('usage: lock-holder URL PATH\n')
  process.exit(2)
}
const c = await NfsClient.mount(url)
await c.lock(path, { start: 0, length: 0, exclusive: true, wait: false })
process.stdout.write('locked\n')
setInterval(() => undefined, 60_000)
