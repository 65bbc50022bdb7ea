/*
 * tsnfs serve --ndmp: the flags, the refusals at start, and a served process answering NDMP
 * (CONFIG_GET_FS_INFO lists the export list's paths, TAPE_INFO the --ndmp-tape devices).
 */
import { join } from 'node:path'
import t from 'tap'
import { NdmpConnection } from '../../client/ndmp/connection.ts'
import * as v4 from '../../xdr/generated/ndmp4.ts'
import { ndmpOf, withNdmpDefault } from '../../cli/ndmp-args.ts'
import { serveProcess, tsnfs } from './cli.ts'

t.test('flags: --ndmp without --ndmp-auth (or with a bad auth file) refuses to start', async (t) => {
  const dir = t.testdir({ auth: 'backup:pw\nbroken line\n', good: 'backup:pw\n' })
  const bare = await tsnfs(['serve', '--ndmp', '--port', '0', '--state-dir', dir])
  t.not(bare.code, 0, 'no --ndmp-auth: the process fails')
  t.match(bare.stderr, /--ndmp needs --ndmp-auth FILE/)
  // The rest through the parser itself (each refusal is the same path out of serve).
  t.throws(() => ndmpOf({ ndmp: '0', 'ndmp-auth': join(dir, 'auth') }), { code: 'NDMP_AUTH_FILE', message: `${join(dir, 'auth')}:2: expected user:password` })
  t.throws(() => ndmpOf({ 'ndmp-tape': ['/x'] }), { message: '--ndmp-auth and --ndmp-tape need --ndmp' })
  t.throws(() => ndmpOf({ ndmp: '70000', 'ndmp-auth': join(dir, 'good') }), { message: '--ndmp: not a port number: 70000' })
  t.equal(ndmpOf({}), undefined, 'no --ndmp: no NDMP')
  const o = ndmpOf({ ndmp: '10000', 'ndmp-auth': join(dir, 'good'), 'ndmp-tape': ['rel/tape'] })
  t.equal(o?.port, 10000)
  t.same(o?.tapes, [{ name: join(process.cwd(), 'rel/tape'), path: join(process.cwd(), 'rel/tape') }], 'tape paths are made absolute')
  t.same(withNdmpDefault(['--ndmp', '--port', '0']), ['--ndmp', '10000', '--port', '0'], '--ndmp alone means port 10000')
  t.same(withNdmpDefault(['--port', '0', '--ndmp']), ['--port', '0', '--ndmp', '10000'])
  t.same(withNdmpDefault(['--ndmp', '0']), ['--ndmp', '0'])
})

t.test('a served process answers NDMP on its port with the exports and tapes it was given', async (t) => {
  const dir = t.testdir({ auth: '# dma\nbackup:pw\n', exports: '/export *(rw,insecure,backend=memory)\n', tapes: {} })
  const s = await serveProcess(t, [
    '--exports', join(dir, 'exports'), '--port', '0', '--host', '127.0.0.1', '--state-dir', dir,
    '--ndmp', '0', '--ndmp-auth', join(dir, 'auth'), '--ndmp-tape', join(dir, 'tapes'),
  ])
  const m = /ndmp: TCP port (\d+) \(NDMP v4 and v3, 1 user\(s\), 1 tape device\(s\)\)/.exec(s.banner)
  t.ok(m, 'the banner names the NDMP port')
  const c = await NdmpConnection.connect({ host: '127.0.0.1', port: Number(m?.[1]) })
  await c.auth({ type: 'md5', user: 'backup', password: 'pw' })
  const fs = await c.call(v4.ndmp4_message.NDMP4_CONFIG_GET_FS_INFO, null, undefined, v4.ndmp4_config_get_fs_info_reply)
  t.same(fs.fs_info.map((f) => f.fs_logical_device), ['/export'])
  const tape = await c.call(v4.ndmp4_message.NDMP4_CONFIG_GET_TAPE_INFO, null, undefined, v4.ndmp4_config_get_tape_info_reply)
  t.same(tape.tape_info.map((i) => i.caplist[0]?.device), [join(dir, 'tapes')])
  await c.close()
  s.child.kill('SIGTERM')
  t.equal(await s.exit, 0, 'stops cleanly')
})
