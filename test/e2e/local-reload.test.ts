/*
 * SIGHUP on a running `tsnfs serve` (issue 3 point 7): the export list is
 * re-read atomically. A new export appears, a removed one answers STALE, a
 * bad file keeps the running exports and logs the error with its line, and
 * handles of unchanged exports keep working throughout (requests streamed
 * during the reloads all succeed).
 */
import t from 'tap'
import fs from 'node:fs'
import { join } from 'node:path'
import { ensureBuilt, Nfs3, S, spawnServe } from '../helpers/local.ts'

t.before(ensureBuilt)

/** Poll `check` until it is true (reload is asynchronous after the signal); false after ~10 s. */
async function until(check: () => Promise<boolean> | boolean): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return true
    await new Promise((res) => setTimeout(res, 50))
  }
  return false
}

t.test('SIGHUP re-reads the export list: new exports, removed ones, bad files, unchanged handles', async (t) => {
  const base = t.testdir({ a: { 'fa.txt': 'in export a\n' }, b: { 'fb.txt': 'in export b\n' }, state: {} })
  const a = join(base, 'a')
  const b = join(base, 'b')
  const exportsFile = join(base, 'exports')
  const line = (p: string): string => `${p} *(rw,insecure,no_root_squash)\n`
  fs.writeFileSync(exportsFile, line(a))
  const srv = await spawnServe(t, exportsFile, join(base, 'state'), ['--log-level', 'info'])
  const nfs = await Nfs3.connect(t, srv.port)
  const rootA = await nfs.mount(a)
  const fa = await nfs.walk(rootA, 'fa.txt')
  t.not(await nfs.mntStatus(b), 0, 'b is not exported yet')

  // A stream of requests on export a through every reload: none may fail.
  const flow = { on: true }
  const statuses: number[] = []
  const stream = (async () => {
    while (flow.on) statuses.push((await nfs.read(fa, 0n, 100)).status)
  })()

  // 1. A new export appears; a stays.
  fs.writeFileSync(exportsFile, line(a) + line(b))
  srv.child.kill('SIGHUP')
  t.ok(await until(async () => (await nfs.mntStatus(b)) === 0), 'after SIGHUP, MNT of the new export works')
  const rootB = await nfs.mount(b)
  const fb = await nfs.walk(rootB, 'fb.txt')
  t.equal((await nfs.read(fb, 0n, 100)).data?.toString(), 'in export b\n')
  t.ok((await nfs.mount(a)).equals(rootA), 'the unchanged export keeps its root handle')
  t.equal((await nfs.read(fa, 0n, 100)).data?.toString(), 'in export a\n', 'and its file handles')

  // 2. A bad file: logged with its line, the running exports stay.
  const before = srv.stderr().length
  fs.writeFileSync(exportsFile, `${line(a)}${b} *(rw,bogus_option)\n`)
  srv.child.kill('SIGHUP')
  t.ok(await until(() => srv.stderr().slice(before).includes('reload failed')), 'the failed reload is logged')
  const log = srv.stderr().slice(before)
  t.match(log, `${exportsFile}:2:`, 'with the file and line of the error')
  t.match(log, /bogus_option/, 'and what is wrong')
  t.equal(await nfs.mntStatus(a), 0, 'MNT of the old export a still works')
  t.equal(await nfs.mntStatus(b), 0, 'and of b, which the bad file would have changed')
  t.equal((await nfs.read(fb, 0n, 100)).status, S.OK, "b's handles keep working")
  t.equal(srv.child.exitCode, null, 'the server is still running')

  // 3. An export removed: its handles are STALE, MNT fails; the other one is untouched.
  fs.writeFileSync(exportsFile, line(b))
  srv.child.kill('SIGHUP')
  t.ok(await until(async () => (await nfs.mntStatus(a)) !== 0), 'after SIGHUP, a is no longer exported')
  flow.on = false
  await stream
  t.ok(statuses.length > 10, `${statuses.length} READs on export a streamed through the reloads`)
  // Every READ that was answered before a's removal succeeded; after it, only STALE is allowed.
  const firstStale = statuses.indexOf(S.STALE)
  const head = firstStale < 0 ? statuses : statuses.slice(0, firstStale)
  t.ok(head.length > 0 && head.every((s) => s === S.OK), 'no READ failed while a was exported')
  t.ok(statuses.slice(head.length).every((s) => s === S.STALE), 'after its removal only STALE')
  t.equal((await nfs.read(fa, 0n, 100)).status, S.STALE, "a's handles are STALE")
  t.equal((await nfs.read(fb, 0n, 100)).data?.toString(), 'in export b\n', "b's handles keep working")

  // 4. a back with the same line: the same export id, so its old handles work again.
  fs.writeFileSync(exportsFile, line(a) + line(b))
  srv.child.kill('SIGHUP')
  t.ok(await until(async () => (await nfs.mntStatus(a)) === 0), 'a is exported again')
  t.equal((await nfs.read(fa, 0n, 100)).data?.toString(), 'in export a\n', 'and its handle from before works again')
  t.ok((await nfs.mount(a)).equals(rootA), 'with the same root handle')
})
