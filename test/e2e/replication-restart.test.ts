/*
 * Issue 15 §2 as processes: a sync primary (`tsnfs serve --standby --sync`, a
 * local export) is SIGKILLed and started again on the same state directory.
 * Its stable replies waited for the change log only; the id map's binds were
 * in the log and the map itself possibly not written at all
 * (server/replication/map-recovery.ts). After the restart every handle a
 * CREATE reply gave answers with the same fileid and LOOKUP gives the same
 * handle back; the files REMOVEd before the kill are stale.
 */
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Nfs3, S } from '../helpers/local.ts'
import { standbyProcess, tempDir } from '../helpers/tsnfs-process.ts'
import { serveProcess } from '../cli/cli.ts'

const FILES = 150

t.test('a SIGKILLed primary restarted on its state directory answers every handle it gave, with the same fileids', async (t) => {
  const exportPath = tempDir(t, 'tsnfs-restart-')
  const primaryState = tempDir(t, 'tsnfs-restart-a-')
  const standbyState = tempDir(t, 'tsnfs-restart-b-')
  const conf = tempDir(t, 'tsnfs-restart-conf-')
  writeFileSync(join(conf, 'primary'), `${exportPath} *(rw,insecure,no_root_squash)\n`)
  writeFileSync(join(conf, 'standby'), `${exportPath} *(rw,insecure,no_root_squash,backend=memory)\n`)
  const standby = await standbyProcess(t, ['--listen', '127.0.0.1:0', '--exports', join(conf, 'standby'), '--state-dir', standbyState, '--port', '0', '--host', '127.0.0.1', '--node', 'b'])
  const serveArgs = [
    '--exports', join(conf, 'primary'), '--port', '0', '--host', '127.0.0.1', '--state-dir', primaryState, '--no-lock', '--admin', 'off',
    '--standby', `127.0.0.1:${String(standby.port)}`, '--sync', '--heartbeat', '200', '--node', 'a',
  ]
  const first = await serveProcess(t, serveArgs)
  await first.waitForLog(/standby joined the sync set/)
  const one = await Nfs3.connect(t, first.port)
  const root = await one.mount(exportPath)
  const made: { name: string; fh: Buffer; fileid: bigint; removed: boolean }[] = []
  for (let i = 0; i < FILES; i++) {
    const name = `file-${String(i)}`
    const c = await one.create(root, name)
    if (c.status !== S.OK || c.fh === undefined) throw new Error(`CREATE ${name}: ${String(c.status)}`)
    const a = await one.getattr(c.fh)
    if (a.fileid === undefined) throw new Error(`GETATTR ${name}: ${String(a.status)}`)
    // Every third one removed again: its vid is unbound, in the log only too.
    const removed = i % 3 === 0
    if (removed) t.equal(await one.remove(root, name), S.OK, `REMOVE ${name}`)
    made.push({ name, fh: c.fh, fileid: a.fileid, removed })
  }
  first.child.kill('SIGKILL')
  await first.exit
  one.c.close()

  const second = await serveProcess(t, serveArgs)
  const two = await Nfs3.connect(t, second.port)
  const root2 = await two.mount(exportPath)
  t.same(root2, root, 'the same root handle')
  let same = 0
  let stale = 0
  for (const m of made) {
    const a = await two.getattr(m.fh)
    if (m.removed) {
      if (a.status === S.STALE) stale++
      else t.fail(`${m.name}: removed before the kill, GETATTR says ${String(a.status)}`)
      continue
    }
    const l = await two.lookup(root2, m.name)
    if (a.status === S.OK && a.fileid === m.fileid && l.fh !== undefined && l.fh.equals(m.fh)) same++
    else t.fail(`${m.name}: GETATTR ${String(a.status)} fileid ${String(a.fileid)} (was ${String(m.fileid)}), LOOKUP ${String(l.status)}`)
  }
  t.equal(same, made.filter((m) => !m.removed).length, 'every live handle answers, same fileid, and LOOKUP gives it back')
  t.equal(stale, made.filter((m) => m.removed).length, 'every removed one is stale')
  two.c.close()
  second.child.kill('SIGTERM')
  await second.exit
})
