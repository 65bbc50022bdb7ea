/*
 * Files from before 1970 on a primary's local export (a tar archive's
 * timestamps, `touch -d 1960-01-01`): the local backend reports their times
 * with negative seconds, the full resync and every later change carry them
 * to the standby. When every backend refused negative seconds in SETATTR,
 * the standby's resync and flush failed with EINVAL on every try and never
 * caught up (session 43 set the epoch instead); now the standby keeps the
 * primary's times, so local tools on it see 1960 after a takeover too.
 */
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Nfs3, S } from '../../helpers/local.ts'
import { caughtUp, startPair, until } from './resync-fixtures.ts'
import type { Pair } from './resync-fixtures.ts'

const last = (pair: Pair) => (): bigint => pair.repl.view().positions[0]?.applied ?? -1n

t.test('times before 1970 on the primary: the standby resyncs and keeps applying changes', async (t) => {
  const dir = t.testdir({ export: {}, copy: {} })
  const exportPath = join(dir, 'export')
  mkdirSync(join(exportPath, 'old-dir'))
  writeFileSync(join(exportPath, 'old-dir', 'old.txt'), 'from the sixties\n')
  // touch(1), not utimes: Node takes a negative number of seconds for "now".
  execFileSync('touch', ['-d', '1960-01-01 00:00:00 UTC', join(exportPath, 'old-dir', 'old.txt'), join(exportPath, 'old-dir')])
  t.equal(statSync(join(exportPath, 'old-dir', 'old.txt')).mtimeMs, -315_619_200_000, 'the host file system keeps the time before 1970')

  const pair = await startPair(t, { exportPath, standbyRoot: join(dir, 'copy'), dir })
  await until('the resync and catch-up', () => caughtUp(pair, last(pair)))
  const copy = join(dir, 'copy', 'old-dir', 'old.txt')
  t.equal(readFileSync(copy, 'utf8'), 'from the sixties\n', 'the file reached the standby')
  t.equal(statSync(copy).mtimeMs, -315_619_200_000, 'its mtime in 1960')
  t.equal(statSync(join(dir, 'copy', 'old-dir')).mtimeMs, -315_619_200_000, "the directory's too")

  // A change whose reported times keep the old atime (a WRITE sets mtime only), in the old directory.
  const c = await Nfs3.connect(t, pair.server.port)
  const root = await c.mount(exportPath)
  const file = await c.walk(root, 'old-dir', 'old.txt')
  t.equal((await c.write(file, 0n, Buffer.from('FROM'), 2)).status, S.OK)
  const made = await c.create(await c.walk(root, 'old-dir'), 'new.txt')
  t.equal(made.status, S.OK)
  await until('the write and the create shipped', () => caughtUp(pair, last(pair)))
  // The atime before reading the copy (the read would move it: relatime).
  t.equal(statSync(copy).atimeMs, -315_619_200_000, 'the old atime kept')
  t.equal(readFileSync(copy, 'utf8'), 'FROM the sixties\n', 'the write applied on the standby')
  t.ok(statSync(copy).mtimeMs > 0, 'the new mtime as sent')
  t.ok(statSync(join(dir, 'copy', 'old-dir', 'new.txt')).isFile(), 'the create applied')
  c.c.close()
})
