/*
 * The admin channel in a server (createServer with `admin`): the socket is 0600, a dead
 * server's socket is replaced and a live one refused; malformed input (not JSON, a 1 MiB line,
 * unknown command, unknown volume, bad member) gets exact error replies and the server lives on;
 * a replace whose client hangs up keeps running and status shows how it ended.
 */
import t from 'tap'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { NfsClient } from '../../client/nfs-client.ts'
import { adminRequest } from '../../server/admin/client.ts'
import { startAdminSocket } from '../../server/admin/socket.ts'
import { AdminCommands } from '../../server/admin/commands.ts'
import { silentLogger } from '../../server/logger.ts'
import { ImageFile } from '../../vfs/engine/blockdev/image-file.ts'
import { startServer } from '../helpers/server.ts'
import { scratch, seededBytes } from '../vfs/engine/format-helpers.ts'
import { formattedVolume } from '../helpers/volume-images.ts'

t.setTimeout(60_000)
const dir = scratch(t, 'admin')
const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 100000)
t.comment(`seed ${seed}`)
const data = seededBytes(seed)(1024 * 1024 + 77)
const legs = ['l0.img', 'l1.img'].map((n) => path.join(dir, n))
const sock = path.join(dir, 'admin.sock')

/** Sends raw bytes, collects reply lines until the server closes or `lines` have come. */
function raw(bytes: string | Buffer, lines: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(sock)
    let text = ''
    const done = (): void => {
      s.destroy()
      resolve(text.split('\n').filter((l) => l !== ''))
    }
    s.on('data', (d: Buffer) => {
      text += d.toString()
      if (text.split('\n').length > lines) done()
    })
    s.on('close', done)
    s.on('error', reject)
    s.write(bytes)
  })
}

t.before(() => formattedVolume('mir', 'mirror', legs, 8 * 1024 * 1024))

t.test('a served mirror through the admin socket', async (t) => {
  const s = await startServer(t, `/m *(rw,insecure,no_root_squash,backend=engine,volume=mir,disks=${dir}/l*.img)\n`, { admin: sock })
  t.equal(s.server.adminPath, sock)
  t.equal(fs.statSync(sock).mode & 0o777, 0o600, 'the socket is 0600')
  const c = await NfsClient.mount(s.url('/m'))
  await c.writeFile('/a.bin', data)

  t.test('malformed input gets exact errors; the server lives on', async (t) => {
    t.same(await raw('this is not json\n', 1), ['{"ok":false,"code":"ADMIN_BAD_REQUEST","message":"not JSON: Unexpected token \'h\', \\"this is not json\\" is not valid JSON"}'])
    t.same((await raw('[1,2]\n{}\n', 2)).map((l) => JSON.parse(l) as unknown), [
      { ok: false, code: 'ADMIN_BAD_REQUEST', message: 'a request is a JSON object' },
      { ok: false, code: 'ADMIN_BAD_REQUEST', message: 'a request needs "command", a non-empty string' },
    ])
    // 100 requests in one write: the connection pauses past its queue limit and resumes, every one answered in order.
    const many = await raw(Array.from({ length: 100 }, (_, i) => `{"command":"status","volume":"v${i}"}\n`).join(''), 100)
    t.equal(many.length, 100, 'a pipelined burst: one reply per request')
    t.ok(many.every((l, i) => l.includes(`no served volume \\"v${i}\\"`)), 'in order')
    const long = await raw(Buffer.alloc(1024 * 1024, 0x61), 5)
    t.same(long, ['{"ok":false,"code":"ADMIN_TOO_LONG","message":"a request line is at most 65536 bytes"}'], 'a 1 MiB line: one reply, then the connection closes')
    t.same(await adminRequest(sock, { command: 'frobnicate' }), { ok: false, code: 'ADMIN_UNKNOWN_COMMAND', message: 'unknown command "frobnicate" (commands: fail, grow, replace, scrub, snapshot-create, snapshot-delete, snapshot-export, snapshot-list, status, volumes)' })
    t.same(await adminRequest(sock, { command: 'status', volume: 'nope' }), { ok: false, code: 'ADMIN_NO_VOLUME', message: 'no served volume "nope" (served: mir)' })
    t.same(await adminRequest(sock, { command: 'status' }), { ok: false, code: 'ADMIN_BAD_ARGUMENT', message: 'status: "volume" must be a non-empty string' })
    t.same(await adminRequest(sock, { command: 'fail', volume: 'mir', member: 7 }), { ok: false, code: 'VOLUME_MEMBER', message: 'volume mir has no member 7 (members 0 … 1)' })
    t.same(await adminRequest(sock, { command: 'fail', volume: 'mir', member: '/no/such.img' }), { ok: false, code: 'VOLUME_MEMBER', message: 'volume mir has no member "/no/such.img" (give an index, a member uuid or one of its disks)' })
    t.same(await adminRequest(sock, { command: 'fail', volume: 'mir', member: -1 }), { ok: false, code: 'ADMIN_BAD_ARGUMENT', message: 'fail: "member" must be an index (0, 1, ...), a layout address (0.1: child 1 of child 0), a member uuid or a disk path' })
    t.same(await adminRequest(sock, { command: 'replace', volume: 'mir', member: 0, disk: legs[1] }), { ok: false, code: 'VOLUME_MEMBER', message: `${legs[1]} is one of the volume's disks already` })
    t.same(await adminRequest(sock, { command: 'replace', volume: 'mir', member: 0, disk: 'rel.img' }), { ok: false, code: 'ADMIN_BAD_ARGUMENT', message: 'replace: "disk" must be an absolute path, got "rel.img"' })
    t.same(await adminRequest(sock, { command: 'scrub', volume: 'mir', repair: 'yes' }), { ok: false, code: 'ADMIN_BAD_ARGUMENT', message: 'scrub: "repair" must be true or false' })
    const st = await adminRequest(sock, { command: 'status', volume: 'mir' })
    t.match(st, { ok: true, name: 'mir', level: 'mirror', degraded: false, failed: false, export: '/m', operation: null })
    t.ok((await c.readFile('/a.bin')).equals(data), 'NFS still serves')
    t.match(await adminRequest(sock, { command: 'volumes' }), { ok: true, volumes: [{ name: 'mir', level: 'mirror', export: '/m', state: 'ok', operation: null }] })
  })

  t.test('fail, then a replace whose client hangs up keeps running to the end', async (t) => {
    const f = await adminRequest(sock, { command: 'fail', volume: 'mir', member: legs[1] })
    t.match(f, { ok: true, volume: 'mir', member: 1, seq: 2 })
    t.match(await adminRequest(sock, { command: 'status', volume: 'mir' }), { degraded: true, members: [{ state: 'ok', failed: false }, { state: 'failed', failed: true, reason: 'failed by hand (tsnfs volume fail, online)' }] })
    t.match(await adminRequest(sock, { command: 'fail', volume: 'mir', member: 0 }), { ok: false, code: 'VOLUME_FAILED' }, 'the last leg is not failed')
    t.ok((await c.readFile('/a.bin')).equals(data), 'degraded, every byte reads')
    const fresh = path.join(dir, 'new.img')
    await (await ImageFile.create(fresh, 8 * 1024 * 1024)).close()
    // 4 MiB/s over ~7 MiB: the client hangs up after the first progress line.
    const first = await raw(`${JSON.stringify({ command: 'replace', volume: 'mir', member: 1, disk: fresh, rate: 4 * 1024 * 1024 })}\n`, 1)
    t.match(JSON.parse(first[0] ?? '{}'), { progress: { operation: 'replace', volume: 'mir', member: 1 } })
    const busy = await adminRequest(sock, { command: 'scrub', volume: 'mir' })
    t.match(busy, { ok: false, code: 'ADMIN_BUSY' }, 'one long operation at a time')
    t.match(await adminRequest(sock, { command: 'status', volume: 'mir' }), { operation: { kind: 'replace', member: 1, disk: fresh } })
    await c.writeFile('/during.bin', data.subarray(0, 300_000))
    let st = await adminRequest(sock, { command: 'status', volume: 'mir' })
    for (let i = 0; i < 200 && st.ok && st.operation !== null; i++) {
      await new Promise((r) => setTimeout(r, 100))
      st = await adminRequest(sock, { command: 'status', volume: 'mir' })
    }
    t.match(st, { ok: true, degraded: false, operation: null, lastOperation: { kind: 'replace', ok: true }, members: [{ state: 'ok' }, { state: 'ok', path: fresh, failed: false }] })
    const scrub = await adminRequest(sock, { command: 'scrub', volume: 'mir' })
    t.match(scrub, { ok: true, mismatches: 0, layers: [{ layer: 'mirror', mismatches: 0 }] })
    const text = s.server.renderMetrics()
    t.match(text, /^tsnfs_volume_state\{volume="mir"\} 0$/m)
    t.match(text, /^tsnfs_volume_events_total\{volume="mir",kind="rebuild-done"\} 1$/m)
    t.match(text, /^tsnfs_volume_events_total\{volume="mir",kind="member-failed"\} 1$/m)
    t.ok((await c.readFile('/during.bin')).equals(data.subarray(0, 300_000)), 'written during the rebuild, read back')
  })

  t.test('a second socket on a live one is refused; a dead one is replaced', async (t) => {
    await t.rejects(startAdminSocket(sock, new AdminCommands(), silentLogger), { message: `admin socket ${sock}: another server answers on it (give this one its own --admin PATH or --state-dir)` })
    // A socket file nobody listens on: a hard link to a socket whose server then closes.
    const other = path.join(dir, 'other.sock')
    const stale = path.join(dir, 'stale.sock')
    const srv = net.createServer()
    await new Promise<void>((r) => srv.listen(other, r))
    fs.linkSync(other, stale)
    await new Promise<void>((r) => srv.close(() => { r() }))
    t.ok(fs.statSync(stale).isSocket(), 'the stale socket file is there')
    const a = await startAdminSocket(stale, new AdminCommands(), silentLogger)
    t.same(await adminRequest(stale, { command: 'volumes' }), { ok: false, code: 'ADMIN_UNKNOWN_COMMAND', message: 'unknown command "volumes" (commands: )' })
    await a.close()
    t.notOk(fs.existsSync(stale), 'closing removes the socket')
    fs.writeFileSync(stale, 'x')
    await t.rejects(startAdminSocket(stale, new AdminCommands(), silentLogger), { message: `admin socket ${stale}: a file that is not a socket is in the way` })
  })

  t.teardown(() => c.umount())
})
