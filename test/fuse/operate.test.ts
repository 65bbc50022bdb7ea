/*
 * Operating mounts (issue 11 point 7): SIGTERM unmounts and exits, writing
 * out first, also when busy (lazily) and with the server down (within
 * --stop-timeout, reporting what is lost); `tsnfs umount` works while a
 * server is down and never waits on another mount whose server hangs; a
 * mount point already used, or being mounted by another daemon, is refused;
 * umount says what it did and refuses what it must not touch.
 */
import t from 'tap'
import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { open, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { TEST_OPTS, canFuse, exportDir, mountFuse, mountpointDir, patternBytes, sh, tsnfs } from '../helpers/fuse.ts'
import type { MountProcess } from '../helpers/fuse.ts'
import { serveProcess } from '../cli/cli.ts'

const skip = canFuse ? false : 'needs root and FUSE'

const mounted = (mnt: string): boolean => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === mnt)

/** A watchdog, not a timing assertion: a command that hangs fails the test instead of stalling the suite. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => { reject(new Error(`${what}: still waiting after ${String(ms)} ms`)); }, ms).unref())])
}

async function stderrOf(m: MountProcess): Promise<string> {
  await m.exit
  return m.stderr()
}

t.test('SIGTERM on a busy mount: detached at once, data written out, exit 0 when the last file closes', { skip }, async (t) => {
  const base = t.testdir({})
  const ex = await exportDir(t, base)
  const mnt = mountpointDir(t)
  const m = await mountFuse(t, ex.source, mnt, `${ex.portOpts},${TEST_OPTS}`, ['--stop-timeout', '60'])
  const h = await open(join(mnt, 'open-file'), 'w')
  await h.write(patternBytes(300_000, 7))
  m.child.kill('SIGTERM')
  for (let i = 0; i < 200 && mounted(mnt); i++) await new Promise((r) => setTimeout(r, 50))
  t.notOk(mounted(mnt), 'gone from the mount table while the file is still open (lazy)')
  t.equal(m.child.exitCode, null, 'the daemon still serves the open file')
  await h.close()
  t.equal(await within(m.exit, 60_000, 'daemon exit'), 0, 'exit 0 once the last file closed')
  t.ok(readFileSync(join(ex.dir, 'open-file')).equals(patternBytes(300_000, 7)), 'the data reached the server')
})

t.test('SIGTERM with the server down: unmounted, exit within --stop-timeout, the unwritten data reported', { skip }, async (t) => {
  const base = t.testdir({})
  const ex = await exportDir(t, base)
  const mnt = mountpointDir(t)
  // hard (the default): the daemon would wait for the server forever.
  const m = await mountFuse(t, ex.source, mnt, `${ex.portOpts},hard,timeo=5`, ['--stop-timeout', '3'])
  const h = await open(join(mnt, 'unsaved'), 'w')
  await h.write(patternBytes(100_000, 3))
  await ex.server.close()
  m.child.kill('SIGTERM')
  const code = await within(m.exit, 60_000, 'daemon exit')
  t.equal(code, 1, 'exit 1: data was lost')
  t.notOk(mounted(mnt), 'the mount is gone')
  t.match(await stderrOf(m), /stopped \(SIGTERM, then 3 s\) with \d+ bytes written through the mount that the server never acknowledged: they are lost/, 'the loss is reported')
  await h.close().catch(() => undefined)
})

t.test('tsnfs umount: a mount whose server is down, next to a mount whose server hangs', { skip }, async (t) => {
  const base = t.testdir({})
  // A server in its own process, to stop with SIGSTOP: its mount hangs (connections accepted, nothing answered).
  const hungDir = join(base, 'hung')
  await sh(`mkdir -p ${hungDir}`)
  writeFileSync(join(base, 'exports'), `${hungDir} *(rw,insecure,no_root_squash)\n`)
  const hung = await serveProcess(t, ['--port', '0', '--host', '127.0.0.1', '--exports', join(base, 'exports'), '--state-dir', join(base, 'state'), '--no-rpcbind', '--log-level', 'warn'])
  const hmnt = mountpointDir(t)
  const hm = await mountFuse(t, `127.0.0.1:${hungDir}`, hmnt, `port=${String(hung.port)},mountport=${String(hung.port)},hard,noac`, ['--stop-timeout', '3'])
  t.teardown(() => {
    hung.child.kill('SIGCONT')
  })
  hung.child.kill('SIGSTOP')
  // A process stuck in the hung mount, as a shell's prompt or a backup job would be.
  const stuck = spawn('stat', [join(hmnt, 'x')], { stdio: 'ignore' })
  const stuckExit = new Promise<number | null>((resolve) => stuck.on('exit', (c) => { resolve(c); }))

  const ex = await exportDir(t, base)
  const mnt = mountpointDir(t)
  const m = await mountFuse(t, ex.source, mnt, `${ex.portOpts},hard,timeo=5`)
  await ex.server.close()
  const u = await within(tsnfs(['umount', mnt]), 30_000, 'tsnfs umount next to a hung mount')
  t.equal(u.code, 0, `umount of the mount whose server is down: exit 0 ${u.stderr}`)
  t.equal(u.stdout, `tsnfs umount: ${mnt}: unmounted; the mount daemon (pid ${String(m.child.pid)}) wrote out its data and exited\n`, 'it says what it did')
  t.notOk(mounted(mnt))
  t.equal(await m.exit, 0)

  const busy = await within(tsnfs(['umount', hmnt]), 30_000, 'tsnfs umount of the hung mount')
  t.equal(busy.code, 1, 'the hung mount is busy (a process waits in it)')
  t.match(busy.stderr, `tsnfs umount: ${hmnt}: target is busy`)
  const lazy = await within(tsnfs(['umount', '-l', hmnt]), 30_000, 'tsnfs umount -l of the hung mount')
  t.equal(lazy.code, 0, 'umount -l detaches it')
  t.match(lazy.stdout, `${hmnt}: detached; the mount daemon (pid ${String(hm.child.pid)}) exits once the last open file is closed`)
  t.notOk(mounted(hmnt))
  hm.child.kill('SIGTERM')
  t.equal(await within(hm.exit, 60_000, 'the hung mount daemon after SIGTERM'), 0, 'SIGTERM ends it within its stop timeout: nothing written was lost')
  t.not(await within(stuckExit, 10_000, 'the process stuck in the hung mount'), null, 'the stuck process got an error instead of waiting forever')
})

t.test('a mount point already used, or being mounted, is refused', { skip }, async (t) => {
  const base = t.testdir({})
  const ex = await exportDir(t, base)
  const mnt = mountpointDir(t)
  await mountFuse(t, ex.source, mnt, `${ex.portOpts},${TEST_OPTS}`)
  for (const extra of [[], ['-f']]) {
    const again = await tsnfs(['mount', ...extra, '-o', `${ex.portOpts},${TEST_OPTS}`, ex.source, mnt])
    t.equal(again.code, 1, `a second mount ${extra.join(' ')} on the same point fails`)
    t.equal(again.stderr, `tsnfs mount: ${mnt}: already a mount point (fuse.tsnfs ${ex.source}); unmount it first\n`)
  }
  const tmpfs = mountpointDir(t)
  await sh(`mount -t tmpfs tsnfs-test-tmpfs ${tmpfs}`)
  t.teardown(() => sh(`umount -l ${tmpfs}`))
  const onTmpfs = await tsnfs(['mount', '-o', `${ex.portOpts},${TEST_OPTS}`, ex.source, tmpfs])
  t.equal(onTmpfs.stderr, `tsnfs mount: ${tmpfs}: already a mount point (tmpfs tsnfs-test-tmpfs); unmount it first\n`, 'any mount point')
  const notOurs = await tsnfs(['umount', tmpfs])
  t.equal(notOurs.code, 1)
  t.equal(notOurs.stderr, `tsnfs umount: ${tmpfs}: not a tsnfs mount (tmpfs tsnfs-test-tmpfs): use umount(8)\n`, 'umount leaves other mounts alone')
  t.ok(mounted(tmpfs))
  const nothing = mountpointDir(t)
  const notMounted = await tsnfs(['umount', nothing])
  t.same([notMounted.code, notMounted.stderr], [1, `tsnfs umount: ${nothing}: not mounted\n`])

  // Two at once on one point: exactly one wins, the other is told why.
  const race = mountpointDir(t)
  t.teardown(() => sh(`umount -l ${race}`))
  const both = await Promise.all([0, 1].map(() => tsnfs(['mount', '-o', `${ex.portOpts},${TEST_OPTS}`, ex.source, race])))
  t.same(both.map((r) => r.code).sort(), [0, 1], 'one mount succeeds, one is refused')
  t.match(both.find((r) => r.code === 1)?.stderr ?? '', new RegExp(`tsnfs mount: ${race}: (already a mount point|another tsnfs mount daemon \\(pid \\d+)`))
  t.equal((await tsnfs(['umount', race])).code, 0)
})

t.test('a non-empty directory can be mounted over, as mount(8) and fuse3 allow', { skip }, async (t: Test) => {
  const base = t.testdir({})
  const ex = await exportDir(t, base)
  const mnt = mountpointDir(t)
  writeFileSync(join(mnt, 'hidden'), 'under the mount')
  t.teardown(() => sh(`rm -f ${join(mnt, 'hidden')}`))
  const m = await mountFuse(t, ex.source, mnt, `${ex.portOpts},${TEST_OPTS}`)
  t.strictSame(await readdir(mnt), [], 'the export hides what the directory holds')
  t.equal(await m.stop(), 0)
  t.equal(readFileSync(join(mnt, 'hidden'), 'utf8'), 'under the mount', 'and it is there again after')
})
