/*
 * TAPE and MOVER over the wire (our client against our server): the parts of the SDK's
 * test-tape that ndmjob never reaches (T-BR, T-BWR, T-READ, T-MTIO as NDMP replies), and a
 * backup then a direct-access restore through the mover over a real TCP data connection, with
 * the NOTIFY_MOVER_HALTED / _PAUSED posts the DMA gets.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { NdmpConnection, NdmpClientError } from '../../../client/ndmp/connection.ts'
import type { NdmpPost } from '../../../client/ndmp/connection.ts'
import { startNdmpServer } from '../../../server/ndmp/server.ts'
import { connectTcp, u32ToIpv4 } from '../../../server/ndmp/mover/connection.ts'
import * as v3 from '../../../xdr/generated/ndmp3.ts'
import * as v4 from '../../../xdr/generated/ndmp4.ts'
import { XdrReader } from '../../../xdr/runtime/reader.ts'

const M = v4.ndmp4_message
const E = v4.ndmp4_error

interface TestLike {
  testdir: (files: Record<string, string>) => string
  teardown: (fn: () => unknown) => void
}

async function setup(t: TestLike): Promise<{ tape: string; open: (version?: 3 | 4) => Promise<NdmpConnection> }> {
  const dir = t.testdir({ tape: '' })
  const tape = join(dir, 'tape')
  const server = await startNdmpServer({ port: 0, host: '127.0.0.1', credentials: new Map([['u', 'p']]), exports: () => [], tapes: [{ name: tape, path: tape }], stateDir: dir })
  const conns: NdmpConnection[] = []
  t.teardown(async () => {
    for (const c of conns) c.destroy()
    await server.close()
  })
  return {
    tape,
    open: async (version = 4) => {
      const c = await NdmpConnection.connect({ host: '127.0.0.1', port: server.port, version, timeoutMs: 10_000 })
      await c.auth({ type: 'text', user: 'u', password: 'p' })
      conns.push(c)
      return c
    },
  }
}

/** The NDMP error a call failed with (NO_ERR if it succeeded). */
async function errOf(p: Promise<unknown>): Promise<number> {
  try {
    await p
    return 0
  } catch (err) {
    if (err instanceof NdmpClientError && err.ndmpError !== null) return err.ndmpError
    throw err
  }
}

t.test('TAPE over v4: open rules, reads, EOF/EOM, resid, block numbers', async (t) => {
  const { tape, open } = await setup(t)
  const c = await open()
  const tOpen = (device: string, mode: 0 | 1 | 2) => c.call(M.NDMP4_TAPE_OPEN, v4.ndmp4_tape_open_request, { device, mode }, v4.ndmp4_tape_open_reply)
  const mtio = async (op: v4.ndmp4_tape_mtio_op, count: number) => (await c.call(M.NDMP4_TAPE_MTIO, v4.ndmp4_tape_mtio_request, { tape_op: op, count }, v4.ndmp4_tape_mtio_reply)).resid_count
  const write = (n: number, fill: number) => c.call(M.NDMP4_TAPE_WRITE, v4.ndmp4_tape_write_request, { data_out: Buffer.alloc(n, fill) }, v4.ndmp4_tape_write_reply)
  const read = (n: number) => c.call(M.NDMP4_TAPE_READ, v4.ndmp4_tape_read_request, { count: n }, v4.ndmp4_tape_read_reply)
  const state = () => c.call(M.NDMP4_TAPE_GET_STATE, null, null, v4.ndmp4_tape_get_state_reply)
  t.equal(await errOf(state()), E.NDMP4_DEV_NOT_OPEN_ERR)
  t.equal(await errOf(tOpen('/etc/passwd', 0)), E.NDMP4_NO_DEVICE_ERR, 'only configured devices open')
  await tOpen(tape, 1)
  t.equal(await errOf(tOpen(tape, 0)), E.NDMP4_DEVICE_OPENED_ERR)
  const other = await open()
  t.equal(await errOf(other.call(M.NDMP4_TAPE_OPEN, v4.ndmp4_tape_open_request, { device: tape, mode: 0 }, v4.ndmp4_tape_open_reply)), E.NDMP4_DEVICE_BUSY_ERR)
  t.equal((await write(1024, 7)).count, 1024)
  await mtio(5, 1)
  await mtio(4, 1)
  t.equal(await errOf(read(0x80000000)), E.NDMP4_ILLEGAL_ARGS_ERR)
  t.equal((await read(2048)).data_in.length, 1024, 'oversize read: the record')
  t.equal(await errOf(read(1024)), E.NDMP4_EOF_ERR)
  let s = await state()
  t.equal(s.file_num, 0)
  t.equal(s.blockno, 0xffffffff, 'block number unknown before the filemark just read')
  t.equal(s.unsupported & v4.NDMP4_TAPE_STATE_TOTAL_SPACE_UNS, v4.NDMP4_TAPE_STATE_TOTAL_SPACE_UNS, 'no capacity: total space unsupported')
  t.equal(await mtio(0, 1), 0)
  t.equal(await errOf(read(1024)), E.NDMP4_EOM_ERR)
  t.equal(await mtio(1, 100), 99)
  t.equal(await mtio(2, 100), 99)
  s = await state()
  t.strictSame([s.file_num, s.blockno], [0, 1])
  t.equal(await mtio(3, 1000000), 1000000 - 1)
  t.equal(await mtio(7, 1), 0, 'TUR')
  t.equal(await errOf(c.call(M.NDMP4_TAPE_EXECUTE_CDB, v4.ndmp4_tape_execute_cdb_request, { flags: 0, timeout: 0, datain_len: 0, cdb: Buffer.alloc(6), dataout: Buffer.alloc(0) }, v4.ndmp4_tape_execute_cdb_reply)), E.NDMP4_NOT_SUPPORTED_ERR)
  t.equal(await errOf(c.call(M.NDMP4_TAPE_MTIO, v4.ndmp4_tape_mtio_request, { tape_op: 9 as v4.ndmp4_tape_mtio_op, count: 1 }, v4.ndmp4_tape_mtio_reply)), E.NDMP4_ILLEGAL_ARGS_ERR)
  await c.call(M.NDMP4_TAPE_CLOSE, null, null, v4.ndmp4_tape_close_reply)
  await tOpen(tape, 0)
  t.equal(await errOf(write(10, 1)), E.NDMP4_PERMISSION_ERR)
  t.equal((await state()).flags & v4.NDMP4_TAPE_STATE_WR_PROT, v4.NDMP4_TAPE_STATE_WR_PROT)
  c.destroy()
  // The session's end releases the drive.
  for (let i = 0; i < 50; i++) {
    if ((await errOf(other.call(M.NDMP4_TAPE_OPEN, v4.ndmp4_tape_open_request, { device: tape, mode: 0 }, v4.ndmp4_tape_open_reply))) === 0) break
    await new Promise((r) => setTimeout(r, 20))
  }
  t.equal((await other.call(M.NDMP4_TAPE_GET_STATE, null, null, v4.ndmp4_tape_get_state_reply)).error, E.NDMP4_NO_ERR, 'another session opens it once the first is gone')
})

t.test('TAPE over v3: end of data reads as EOF, spacing passes filemarks', async (t) => {
  const { tape, open } = await setup(t)
  const c = await open(3)
  const M3 = v3.ndmp3_message
  await c.call(M3.NDMP3_TAPE_OPEN, v3.ndmp3_tape_open_request, { device: tape, mode: 1 }, v3.ndmp3_tape_open_reply)
  await c.call(M3.NDMP3_TAPE_WRITE, v3.ndmp3_tape_write_request, { data_out: Buffer.alloc(100) }, v3.ndmp3_tape_write_reply)
  await c.call(M3.NDMP3_TAPE_MTIO, v3.ndmp3_tape_mtio_request, { tape_op: 5, count: 1 }, v3.ndmp3_tape_mtio_reply)
  await c.call(M3.NDMP3_TAPE_MTIO, v3.ndmp3_tape_mtio_request, { tape_op: 4, count: 1 }, v3.ndmp3_tape_mtio_reply)
  const r = await c.call(M3.NDMP3_TAPE_MTIO, v3.ndmp3_tape_mtio_request, { tape_op: 2, count: 10 }, v3.ndmp3_tape_mtio_reply)
  t.equal(r.resid_count, 9)
  const s = await c.call(M3.NDMP3_TAPE_GET_STATE, null, null, v3.ndmp3_tape_get_state_reply)
  t.strictSame([s.file_num, s.blockno], [1, 0], 'FSR stopped past the filemark (v3)')
  t.equal(await errOf(c.call(M3.NDMP3_TAPE_READ, v3.ndmp3_tape_read_request, { count: 100 }, v3.ndmp3_tape_read_reply)), v3.ndmp3_error.NDMP3_EOF_ERR)
})

t.test('MOVER over the wire: a TCP backup to tape, then a direct-access restore', async (t) => {
  const { tape, open } = await setup(t)
  const c = await open()
  const posts: NdmpPost[] = []
  let wake: (() => void) | null = null
  c.onPost((p) => {
    posts.push(p)
    wake?.()
  })
  const nextPost = async (): Promise<NdmpPost> => {
    while (posts.length === 0) await new Promise<void>((r) => (wake = r))
    return posts.shift()!
  }
  const ok = <R>(p: Promise<R>) => p
  await ok(c.call(M.NDMP4_TAPE_OPEN, v4.ndmp4_tape_open_request, { device: tape, mode: 1 }, v4.ndmp4_tape_open_reply))
  await c.call(M.NDMP4_MOVER_SET_RECORD_SIZE, v4.ndmp4_mover_set_record_size_request, { len: 8192 }, v4.ndmp4_mover_set_record_size_reply)
  await c.call(M.NDMP4_MOVER_SET_WINDOW, v4.ndmp4_mover_set_window_request, { offset: 0n, length: 2n ** 64n - 1n }, v4.ndmp4_mover_set_window_reply)
  const l = await c.call(M.NDMP4_MOVER_LISTEN, v4.ndmp4_mover_listen_request, { mode: 0, addr_type: 1 }, v4.ndmp4_mover_listen_reply)
  t.equal(l.connect_addr.addr_type, 1)
  const addrs = l.connect_addr.addr_type === 1 ? l.connect_addr.tcp_addr.map((a) => ({ host: u32ToIpv4(a.ip_addr), port: a.port })) : []
  t.strictSame(addrs.map((a) => a.host), ['127.0.0.1'], 'the listen address is the session address')
  const image = Buffer.alloc(1_000_003)
  for (let i = 0; i < image.length; i++) image[i] = (i * 131 + (i >> 9)) & 0xff
  const data = await connectTcp(addrs)
  for (let i = 0; i < image.length; i += 50_000) await data.write(image.subarray(i, i + 50_000))
  await data.end()
  const halted = await nextPost()
  t.equal(halted.code, M.NDMP4_NOTIFY_MOVER_HALTED)
  t.equal(v4.ndmp4_notify_mover_halted_post.decode(new XdrReader(halted.body)).reason, v4.ndmp4_mover_halt_reason.NDMP4_MOVER_HALT_CONNECT_CLOSED)
  let st = await c.call(M.NDMP4_MOVER_GET_STATE, null, null, v4.ndmp4_mover_get_state_reply)
  t.equal(st.state, v4.ndmp4_mover_state.NDMP4_MOVER_STATE_HALTED)
  t.equal(st.bytes_moved, BigInt(image.length))
  t.equal(st.record_num, Math.ceil(image.length / 8192))
  data.close()
  await c.call(M.NDMP4_MOVER_STOP, null, null, v4.ndmp4_mover_stop_reply)
  await c.call(M.NDMP4_TAPE_MTIO, v4.ndmp4_tape_mtio_request, { tape_op: 5, count: 1 }, v4.ndmp4_tape_mtio_reply)
  await c.call(M.NDMP4_TAPE_MTIO, v4.ndmp4_tape_mtio_request, { tape_op: 4, count: 1 }, v4.ndmp4_tape_mtio_reply)
  // Restore: the mover connects to "the data service" (this test) listening; ask for a range.
  const { listenTcp } = await import('../../../server/ndmp/mover/connection.ts')
  const dl = await listenTcp({ host: '127.0.0.1' })
  const a = dl.addresses[0]!
  await c.call(M.NDMP4_MOVER_CONNECT, v4.ndmp4_mover_connect_request, { mode: 1, addr: { addr_type: 1, tcp_addr: [{ ip_addr: 0x7f000001, port: a.port, addr_env: [] }] } }, v4.ndmp4_mover_connect_reply)
  const rs = await dl.accept()
  t.equal(await errOf(c.call(M.NDMP4_TAPE_READ, v4.ndmp4_tape_read_request, { count: 10 }, v4.ndmp4_tape_read_reply)), E.NDMP4_ILLEGAL_STATE_ERR, 'no TAPE_READ while the mover holds the tape')
  await c.call(M.NDMP4_MOVER_READ, v4.ndmp4_mover_read_request, { offset: 654_321n, length: 100_000n }, v4.ndmp4_mover_read_reply)
  const parts: Buffer[] = []
  let got = 0
  while (got < 100_000) {
    const b = await rs.read(100_000 - got)
    if (b === null) break
    parts.push(b)
    got += b.length
  }
  const back = Buffer.concat(parts)
  t.equal(createHash('sha256').update(back).digest('hex'), createHash('sha256').update(image.subarray(654_321, 754_321)).digest('hex'))
  st = await c.call(M.NDMP4_MOVER_GET_STATE, null, null, v4.ndmp4_mover_get_state_reply)
  t.equal(st.record_num, 14, 'only the 14 records holding the range were read')
  t.equal(st.seek_position, 754_321n)
  await c.call(M.NDMP4_MOVER_READ, v4.ndmp4_mover_read_request, { offset: 990_000n, length: 100_000n }, v4.ndmp4_mover_read_reply)
  const paused = await nextPost()
  t.equal(paused.code, M.NDMP4_NOTIFY_MOVER_PAUSED)
  const pp = v4.ndmp4_notify_mover_paused_post.decode(new XdrReader(paused.body))
  t.equal(pp.reason, v4.ndmp4_mover_pause_reason.NDMP4_MOVER_PAUSE_EOF, 'the filemark after the image pauses EOF')
  t.equal(pp.seek_position, BigInt(image.length))
  await c.call(M.NDMP4_MOVER_CLOSE, null, null, v4.ndmp4_mover_close_reply)
  t.equal((await nextPost()).code, M.NDMP4_NOTIFY_MOVER_HALTED)
  let tail = 0
  for (;;) {
    const b = await rs.read(65536)
    if (b === null) break
    tail += b.length
  }
  t.equal(tail, image.length - 990_000, 'the data side got the rest, then end of stream')
  await c.call(M.NDMP4_MOVER_STOP, null, null, v4.ndmp4_mover_stop_reply)
  rs.close()
})
