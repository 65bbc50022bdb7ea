/*
 * The mount's life (issue 5 point 5): unmount and remount keep the
 * contents (local backend), a second mount sees the first one's writes
 * after close (close-to-open), SIGTERM unmounts and exits, umount of a busy
 * mount fails as the kernel says while umount -l detaches and the daemon
 * serves the open file to its end, the detached `tsnfs mount` and `tsnfs
 * umount` pair, and a server that goes away: soft mounts fail with EIO,
 * hard mounts wait, both recover. After every stop the directory is a
 * plain directory again, never "Transport endpoint is not connected".
 */
import t from 'tap'
import type { Test } from 'tap'
import { once } from 'node:events'
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { open, readFile, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { TEST_OPTS, canFuse, exportDir, manifest, mountFuse, mountpointDir, patternBytes, sh, tsnfs } from '../helpers/fuse.ts'
import { startServer } from '../helpers/server.ts'

const skip = canFuse ? false : 'needs root and FUSE'

async function assertUnmounted(t: Test, mnt: string): Promise<void> {
  t.equal((await sh(`mountpoint -q ${mnt}`)).code, 32, 'no longer a mount point')
  t.strictSame(await readdir(mnt), [], 'the directory is usable (and empty) again')
}

t.test('unmount and remount: the contents persist', { skip }, async t => {
  const base = t.testdir({})
  const ex = await exportDir(t, base)
  const mnt = mountpointDir(t)
  const m = await mountFuse(t, ex.source, mnt, `${ex.portOpts},${TEST_OPTS}`)
  await sh(`mkdir -p ${mnt}/d && cp -a /etc/hostname ${mnt}/d/ && head -c 3000000 /dev/urandom > ${mnt}/big && ln -s big ${mnt}/link`)
  const before = await manifest(mnt)
  t.equal(await m.stop(), 0, 'the daemon exits 0 after umount')
  await assertUnmounted(t, mnt)
  await mountFuse(t, ex.source, mnt, `${ex.portOpts},${TEST_OPTS}`)
  t.strictSame(await manifest(mnt), before, 'same tree after remounting')
})

t.test('close-to-open between two mounts of one export', { skip }, async t => {
  const base = t.testdir({})
  const ex = await exportDir(t, base)
  const a = mountpointDir(t)
  const b = mountpointDir(t)
  await mountFuse(t, ex.source, a, `${ex.portOpts},${TEST_OPTS}`)
  await mountFuse(t, ex.source, b, `${ex.portOpts},${TEST_OPTS}`)
  await writeFile(join(a, 'f'), patternBytes(200_000, 1))
  t.ok((await readFile(join(b, 'f'))).equals(patternBytes(200_000, 1)), 'B reads what A wrote and closed')
  // Same size, other bytes, while B has the old ones in its page cache and block cache.
  await writeFile(join(a, 'f'), patternBytes(200_000, 2))
  t.ok((await readFile(join(b, 'f'))).equals(patternBytes(200_000, 2)), 'B sees the rewrite on its next open')
  const h = await open(join(b, 'f'), 'a')
  await h.write(Buffer.from('tail'))
  await h.close()
  const seen = await readFile(join(a, 'f'))
  t.equal(seen.length, 200_004, 'A sees the size B made')
  t.equal(seen.subarray(-4).toString(), 'tail', 'and the appended bytes')
})

t.test('SIGTERM unmounts, then the daemon exits', { skip }, async t => {
  const base = t.testdir({})
  const ex = await exportDir(t, base)
  const mnt = mountpointDir(t)
  const m = await mountFuse(t, ex.source, mnt, `${ex.portOpts},${TEST_OPTS}`)
  await writeFile(join(mnt, 'x'), 'x')
  m.child.kill('SIGTERM')
  t.equal(await m.exit, 0, 'exit status 0')
  await assertUnmounted(t, mnt)
  t.equal(readFileSync(join(ex.dir, 'x'), 'utf8'), 'x', 'the data reached the server')
})

t.test('umount of a busy mount: EBUSY; umount -l detaches and the open file is served to its close', { skip }, async t => {
  const base = t.testdir({})
  const ex = await exportDir(t, base)
  const mnt = mountpointDir(t)
  const m = await mountFuse(t, ex.source, mnt, `${ex.portOpts},${TEST_OPTS}`)
  const h = await open(join(mnt, 'open-file'), 'w+')
  const busy = await tsnfs(['umount', mnt])
  t.equal(busy.code, 1, 'tsnfs umount fails')
  t.match(busy.stderr, /busy/i, 'target is busy')
  t.equal((await sh(`mountpoint -q ${mnt}`)).code, 0, 'still mounted')
  t.equal((await sh(`umount -l ${mnt}`)).code, 0, 'umount -l succeeds')
  t.equal((await sh(`mountpoint -q ${mnt}`)).code, 32, 'detached at once')
  await h.write(Buffer.from('written after the detach'), 0, 24, 0)
  const back = Buffer.alloc(24)
  await h.read(back, 0, 24, 0)
  t.equal(back.toString(), 'written after the detach', 'the open file still works')
  t.equal(m.child.exitCode, null, 'the daemon still serves it')
  await h.close()
  t.equal(await m.exit, 0, 'the daemon exits after the last close')
  t.equal(readFileSync(join(ex.dir, 'open-file'), 'utf8'), 'written after the detach', 'and its data is on the server')
})

t.test('detached tsnfs mount and tsnfs umount', { skip }, async t => {
  const base = t.testdir({})
  const ex = await exportDir(t, base)
  const mnt = mountpointDir(t)
  t.teardown(() => sh(`umount -l ${mnt}`))
  const r = await tsnfs(['mount', '-o', `${ex.portOpts},${TEST_OPTS}`, ex.source, mnt])
  t.equal(r.code, 0, `mount returns once live ${r.stderr}`)
  t.equal((await sh(`mountpoint -q ${mnt}`)).code, 0, 'mounted')
  await writeFile(join(mnt, 'hello'), 'world')
  t.equal(readFileSync(join(ex.dir, 'hello'), 'utf8'), 'world', 'served by the daemon')
  const u = await tsnfs(['umount', mnt])
  t.equal(u.code, 0, 'umount')
  await assertUnmounted(t, mnt)
  t.equal((await sh(`pgrep -f -- "--foreground.*${mnt}"`)).code, 1, 'the daemon is gone')
  const bad = await tsnfs(['mount', '-o', `${ex.portOpts},${TEST_OPTS}`, '127.0.0.1:/not-exported', mnt])
  t.equal(bad.code, 1, 'a failed mount says so')
  t.match(bad.stderr, /tsnfs mount: .*(MNT3ERR|denied|No such)/i, 'with the reason')
  t.equal((await sh(`mountpoint -q ${mnt}`)).code, 32, 'and leaves nothing mounted')
})

t.test('a server that goes away: soft fails with EIO, hard waits; both recover', { skip }, async t => {
  const base = t.testdir({})
  const ex = await exportDir(t, base)
  await writeFile(join(ex.dir, 'file'), 'content')
  const soft = mountpointDir(t)
  const hard = mountpointDir(t)
  await mountFuse(t, ex.source, soft, `${ex.portOpts},soft,timeo=5,retrans=1,noac`)
  await mountFuse(t, ex.source, hard, `${ex.portOpts},hard,timeo=5,noac`)
  t.equal((await stat(join(soft, 'file'))).size, 7, 'both work')
  t.equal((await stat(join(hard, 'file'))).size, 7, 'both work')
  await ex.server.close()
  const r = await sh(`cat ${soft}/file`)
  t.match(r.stderr, /Input\/output error/, 'soft: EIO while the server is gone')
  const child = spawn('cat', [join(hard, 'file')], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  await sleep(1500)
  t.equal(child.exitCode, null, 'hard: the read waits')
  await startServer(t, `${ex.dir} *(rw,insecure,no_root_squash)\n`, { port: ex.port, stateDir: ex.stateDir })
  await once(child, 'close')
  t.equal(out, 'content', 'hard: the waiting read completes once the server is back')
  t.equal((await sh(`cat ${soft}/file`)).stdout, 'content', 'soft: works again')
})
