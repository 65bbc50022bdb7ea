/*
 * The control channel over its real Unix socket: every op, the refusals with their codes, a
 * bad or overlong line, one manager per state directory, a dead manager's socket replaced.
 */
import t from 'tap'
import { createConnection } from 'node:net'
import { join } from 'node:path'
import { lstat, writeFile } from 'node:fs/promises'
import { spawn } from 'node:child_process'
import { controlRequest } from '../../dma/control/client.ts'
import { controlPath, MAX_LINE } from '../../dma/control/protocol.ts'
import { startControlServer } from '../../dma/control/server.ts'
import { driversFor } from '../../dma/drivers/select.ts'
import { DmaService } from '../../dma/jobs/service.ts'
import { Pool } from '../../dma/pool/pool.ts'

/** Sends raw text, collects what comes back until the manager closes or `ms` pass. */
function raw(path: string, text: string, ms = 500): Promise<string> {
  return new Promise((resolve) => {
    const s = createConnection(path)
    let got = ''
    s.setEncoding('utf8')
    s.on('data', (d: string) => (got += d))
    s.on('error', () => undefined)
    s.on('close', () => {
      resolve(got)
    })
    s.write(text)
    setTimeout(() => s.destroy(), ms)
  })
}

t.test('ops over the socket', async (t) => {
  const dir = t.testdir({ 'f.bin': 'x'.repeat(30) })
  const state = join(dir, 'state')
  const pool = join(dir, 'pool')
  await Pool.label(pool, 'A', { capacity: 20 })
  t.equal(await controlRequest(state, { op: 'ping' }), null, 'no manager: null')
  const service = await DmaService.open(state, driversFor(state))
  const control = await startControlServer(service)
  t.teardown(() => control.close())
  t.match(await controlRequest(state, { op: 'ping' }), { ok: true, pid: process.pid })
  await t.rejects(startControlServer(service), { code: 'DMA_BUSY', message: /another backup manager/ })
  const run = await controlRequest(state, { op: 'run', export: `file:${join(dir, 'f.bin')}`, pool, level: 0 })
  t.match(run, { ok: true, job: { id: '1', state: 'running', name: 'manual' } })
  for (let i = 0; i < 200 && (await service.get('1')).state !== 'paused'; i++) await new Promise((r) => setTimeout(r, 10))
  t.match(await controlRequest(state, { op: 'list' }), { ok: true, jobs: [{ id: '1', state: 'paused', needs: { label: 'pool-001', isNew: true } }], scheduled: [] })
  t.match(await controlRequest(state, { op: 'continue', id: '1' }), { ok: false, code: 'DMA_NO_TAPE' })
  await Pool.label(pool, 'pool-001')
  t.match(await controlRequest(state, { op: 'continue', id: '1' }), { ok: true, job: { state: 'running' } })
  t.match(await controlRequest(state, { op: 'wait', id: '1' }), { ok: true, job: { state: 'done', bytes: 30, tapes: ['A', 'pool-001'] } })
  t.match(await controlRequest(state, { op: 'get', id: '1' }), { ok: true, job: { state: 'done' } })
  t.match(await controlRequest(state, { op: 'abort', id: '1' }), { ok: false, code: 'DMA_JOB_STATE' })
  t.match(await controlRequest(state, { op: 'abort', id: '7' }), { ok: false, code: 'DMA_NO_JOB' })
  t.match(await controlRequest(state, { op: 'abort' }), { ok: false, code: 'DMA_CONTROL', message: 'abort: needs an id' })
  t.match(await controlRequest(state, { op: 'run', export: 'nas:/x', pool, level: 12 }), { ok: false, code: 'DMA_BAD_LEVEL' })
  t.match(await controlRequest(state, { op: 'run', export: 'nas', pool, level: 0 }), { ok: false, code: 'DMA_BAD_EXPORT' })
  const path = controlPath(state)
  t.match(JSON.parse((await raw(path, 'nonsense\n', 300)).split('\n')[0] ?? ''), { ok: false, code: 'DMA_CONTROL', message: 'a request is one JSON object per line' })
  const lines = (await raw(path, '[]\n{"op":"fly"}\n{"op":"get","id":5}\n{"op":"run","exclude":[1]}\n', 300)).trim().split('\n').map((l) => JSON.parse(l) as { message: string })
  t.strictSame(lines.map((l) => l.message), ['a request is a JSON object', 'no such op: "fly"', 'id: a string', 'exclude: a list of strings'])
  const long = await raw(path, `{"op":"ping","x":"${'y'.repeat(MAX_LINE + 10)}`, 2000)
  t.match(JSON.parse(long), { ok: false, code: 'DMA_CONTROL', message: /at most 65536 bytes/ }, 'an overlong line is answered and the connection closed')
  t.match(await controlRequest(state, { op: 'ping' }), { ok: true }, 'the manager still answers')
})

t.test('stale socket', async (t) => {
  const dir = t.testdir({ state: {} })
  const state = join(dir, 'state')
  const path = controlPath(state)
  // A socket nobody answers on, as a killed manager leaves it.
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up')); setInterval(() => {}, 1000)`], { stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise((r) => child.stdout.once('data', r))
  child.kill('SIGKILL')
  await new Promise((r) => child.once('exit', r))
  t.ok((await lstat(path)).isSocket(), 'the dead manager left its socket')
  const service = await DmaService.open(state, driversFor(state))
  const control = await startControlServer(service)
  t.match(await controlRequest(state, { op: 'ping' }), { ok: true }, 'replaced')
  await control.close()
  await writeFile(path, 'not a socket')
  await t.rejects(startControlServer(service), { code: 'DMA_BUSY', message: /not a socket is in the way/ })
})
