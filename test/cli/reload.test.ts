/*
 * SIGHUP to a served process: a changed export list is served at once (the
 * new export appears in showmount -e); a bad one is refused with its
 * file:line on stderr and the running exports stay.
 */
import t from 'tap'
import { join } from 'node:path'
import { writeFile } from 'node:fs/promises'
import { serveProcess, tsnfs } from './cli.ts'

t.test('SIGHUP reloads a changed file and keeps the old list on a bad one', async (t) => {
  const dir = t.testdir({ exports: '/export *(rw,insecure,backend=memory)\n' })
  const file = join(dir, 'exports')
  const s = await serveProcess(t, ['--exports', file, '--port', '0', '--host', '127.0.0.1', '--state-dir', dir])
  const showmount = async (): Promise<string> => (await tsnfs(['showmount', '-e', '--port', String(s.port), '127.0.0.1'])).stdout
  t.equal(await showmount(), 'Export list for 127.0.0.1:\n/export (everyone)\n')

  await writeFile(file, '/export *(rw,insecure,backend=memory)\n/added 127.0.0.1(ro,insecure,backend=memory)\n')
  s.child.kill('SIGHUP')
  await s.waitForLog(/exports reloaded/)
  t.equal(await showmount(), 'Export list for 127.0.0.1:\n/export (everyone)\n/added  127.0.0.1\n', 'the new export is listed')

  await writeFile(file, '/export *(rw,insecure,backend=memory)\n\n/broken *(rw,nope,backend=memory)\n')
  s.child.kill('SIGHUP')
  const line = await s.waitForLog(/reload failed/)
  t.match(line, `${file}:3:`, 'the error names the file and line')
  t.match(line, /unknown option \\"nope\\"/)
  t.equal(await showmount(), 'Export list for 127.0.0.1:\n/export (everyone)\n/added  127.0.0.1\n', 'the running list is unchanged')

  s.child.kill('SIGTERM')
  t.equal(await s.exit, 0, 'still stops cleanly')
})
