/*
 * The NDMP TAPE service (draft-skardal-ndmpv4 §3.7; v3 alike): TAPE_OPEN, CLOSE, GET_STATE,
 * MTIO, READ, WRITE and EXECUTE_CDB (NOT_SUPPORTED: our tapes are files, there is no SCSI
 * device to pass a CDB to). Version differences live here: v3 reads and record spacing pass
 * the filemark they meet and report end of data as EOF_ERR; v4 stops before the filemark and
 * says EOM_ERR at end of data.
 */
import * as v3 from '../../../xdr/generated/ndmp3.ts'
import * as v4 from '../../../xdr/generated/ndmp4.ts'
import { NdmpError, type NdmpRegistry, type NdmpService, type NdmpSession } from '../service-types.ts'
import type { MtioOp, TapeMode, TapeStatus } from './drive.ts'
import type { TapeDrive } from './drive.ts'
import { MAX_RECORD } from './format.ts'
import { asNdmpError, ndmpErrorNumber } from './ndmp-error.ts'
import { devicesOf, tapeOf } from './session-tape.ts'
import { tapeMtioRequest, tapeOpenRequest } from './lenient-requests.ts'
import { TapeError } from './tape-error.ts'
import { moverBusy } from '../mover/session-mover.ts'

const MTIO_OPS: readonly MtioOp[] = ['FSF', 'BSF', 'FSR', 'BSR', 'REW', 'EOF', 'OFF', 'TUR']
const INVALID_U_LONG = 0xffffffff

function openDrive(session: NdmpSession): TapeDrive {
  const d = tapeOf(session).drive
  if (d === null) throw new TapeError('DEV_NOT_OPEN_ERR', 'no tape is open in this session')
  return d
}

/** TAPE_READ/WRITE/MTIO/CLOSE while the mover owns the tape: the draft's ILLEGAL_STATE. */
function checkMoverIdle(session: NdmpSession): void {
  if (moverBusy(session)) throw new NdmpError(ndmpErrorNumber(session.version, 'ILLEGAL_STATE_ERR'), 'the mover is using the tape')
}

async function tapeOpen(session: NdmpSession, device: string, mode: number): Promise<void> {
  const st = tapeOf(session)
  if (st.drive !== null) throw new TapeError('DEVICE_OPENED_ERR', 'this session has a tape open')
  const drive = devicesOf(session.context).resolve(device)
  if (drive === null) throw new TapeError('NO_DEVICE_ERR', `no tape device ${JSON.stringify(device)}`)
  const modes: Record<number, TapeMode> = { 0: 'read', 1: 'rdwr', 2: 'raw' }
  const m = modes[mode]
  if (m === undefined || (session.version === 3 && m === 'raw')) throw new TapeError('ILLEGAL_ARGS_ERR', `tape open mode ${String(mode)}`)
  await drive.open(session, m)
  st.drive = drive
  session.log.info({ device, mode: m }, 'ndmp: tape opened')
}

async function tapeClose(session: NdmpSession): Promise<void> {
  const drive = openDrive(session)
  checkMoverIdle(session)
  tapeOf(session).drive = null
  await drive.close(session)
}

interface StateFields {
  bits: number
  flags: number
  file_num: number
  soft_errors: number
  block_size: number
  blockno: number
  total_space: bigint
  space_remain: bigint
}

/** The state fields both versions share; `bits` are the unsupported (v4) / invalid (v3) flags. */
function stateFields(s: TapeStatus, spaceBits: number, wrProt: number): StateFields {
  return {
    bits: s.capacity === 0 ? spaceBits : 0,
    flags: s.mode === 'read' ? wrProt : 0,
    file_num: s.fileNum,
    soft_errors: 0,
    // Variable-length records: block size 0, as a tape in variable-block mode.
    block_size: 0,
    blockno: s.blockNo < 0 ? INVALID_U_LONG : s.blockNo,
    total_space: BigInt(s.capacity),
    space_remain: BigInt(s.spaceRemain),
  }
}

async function tapeMtio(session: NdmpSession, op: number, count: number): Promise<number> {
  const drive = openDrive(session)
  checkMoverIdle(session)
  const name = MTIO_OPS[op]
  if (name === undefined || (session.version === 3 && name === 'TUR')) throw new TapeError('ILLEGAL_ARGS_ERR', `mtio op ${String(op)}`)
  return drive.mtio(session, name, count, session.version === 3)
}

async function tapeRead(session: NdmpSession, count: number): Promise<Buffer> {
  const drive = openDrive(session)
  checkMoverIdle(session)
  if (count > MAX_RECORD) throw new TapeError('ILLEGAL_ARGS_ERR', `read count ${String(count)} over ${String(MAX_RECORD)}`)
  try {
    return await drive.read(session, count, session.version === 3)
  } catch (err) {
    // v3 knows no EOM on read: end of data reads as a filemark would.
    if (session.version === 3 && err instanceof TapeError && err.code === 'EOM_ERR') throw new TapeError('EOF_ERR', err.message)
    throw err
  }
}

async function tapeWrite(session: NdmpSession, data: Buffer): Promise<number> {
  const drive = openDrive(session)
  checkMoverIdle(session)
  await drive.write(session, data)
  return data.length
}

/** Runs `fn`, turning tape and mover failures into the reply's error. */
async function guard<T>(session: NdmpSession, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    return asNdmpError(session.version, err)
  }
}

function register4(r: NdmpRegistry): void {
  const M = v4.ndmp4_message
  const OK = v4.ndmp4_error.NDMP4_NO_ERR
  r.register(4, M.NDMP4_TAPE_OPEN, {
    request: tapeOpenRequest,
    reply: v4.ndmp4_tape_open_reply,
    handle: (s, q) => guard(s, async () => (await tapeOpen(s, q.device, q.mode), { error: OK })),
  })
  r.register(4, M.NDMP4_TAPE_CLOSE, { request: null, reply: v4.ndmp4_tape_close_reply, handle: (s) => guard(s, async () => (await tapeClose(s), { error: OK })) })
  r.register(4, M.NDMP4_TAPE_GET_STATE, {
    request: null,
    reply: v4.ndmp4_tape_get_state_reply,
    handle: (s) =>
      guard(s, () => {
        const f = stateFields(openDrive(s).status(s), v4.NDMP4_TAPE_STATE_TOTAL_SPACE_UNS | v4.NDMP4_TAPE_STATE_SPACE_REMAIN_UNS, v4.NDMP4_TAPE_STATE_WR_PROT)
        const { bits, ...rest } = f
        return Promise.resolve({ unsupported: bits, error: OK, ...rest })
      }),
  })
  r.register(4, M.NDMP4_TAPE_MTIO, {
    request: tapeMtioRequest,
    reply: v4.ndmp4_tape_mtio_reply,
    handle: (s, q) => guard(s, async () => ({ error: OK, resid_count: await tapeMtio(s, q.tape_op, q.count) })),
  })
  r.register(4, M.NDMP4_TAPE_READ, {
    request: v4.ndmp4_tape_read_request,
    reply: v4.ndmp4_tape_read_reply,
    handle: (s, q) => guard(s, async () => ({ error: OK, data_in: await tapeRead(s, q.count) })),
  })
  r.register(4, M.NDMP4_TAPE_WRITE, {
    request: v4.ndmp4_tape_write_request,
    reply: v4.ndmp4_tape_write_reply,
    handle: (s, q) => guard(s, async () => ({ error: OK, count: await tapeWrite(s, q.data_out) })),
  })
  r.register(4, M.NDMP4_TAPE_EXECUTE_CDB, {
    request: v4.ndmp4_tape_execute_cdb_request,
    reply: v4.ndmp4_tape_execute_cdb_reply,
    handle: () => {
      throw new NdmpError(v4.ndmp4_error.NDMP4_NOT_SUPPORTED_ERR, 'virtual tapes take no SCSI commands')
    },
  })
}

function register3(r: NdmpRegistry): void {
  const M = v3.ndmp3_message
  const OK = v3.ndmp3_error.NDMP3_NO_ERR
  r.register(3, M.NDMP3_TAPE_OPEN, {
    request: tapeOpenRequest,
    reply: v3.ndmp3_tape_open_reply,
    handle: (s, q) => guard(s, async () => (await tapeOpen(s, q.device, q.mode), { error: OK })),
  })
  r.register(3, M.NDMP3_TAPE_CLOSE, { request: null, reply: v3.ndmp3_tape_close_reply, handle: (s) => guard(s, async () => (await tapeClose(s), { error: OK })) })
  r.register(3, M.NDMP3_TAPE_GET_STATE, {
    request: null,
    reply: v3.ndmp3_tape_get_state_reply,
    handle: (s) =>
      guard(s, () => {
        const f = stateFields(openDrive(s).status(s), v3.NDMP3_TAPE_STATE_TOTAL_SPACE_INVALID | v3.NDMP3_TAPE_STATE_SPACE_REMAIN_INVALID, v3.NDMP3_TAPE_STATE_WR_PROT)
        const { bits, ...rest } = f
        return Promise.resolve({ invalid: bits | v3.NDMP3_TAPE_STATE_PARTITION_INVALID, error: OK, ...rest, partition: 0 })
      }),
  })
  r.register(3, M.NDMP3_TAPE_MTIO, {
    request: tapeMtioRequest,
    reply: v3.ndmp3_tape_mtio_reply,
    handle: (s, q) => guard(s, async () => ({ error: OK, resid_count: await tapeMtio(s, q.tape_op, q.count) })),
  })
  r.register(3, M.NDMP3_TAPE_READ, {
    request: v3.ndmp3_tape_read_request,
    reply: v3.ndmp3_tape_read_reply,
    handle: (s, q) => guard(s, async () => ({ error: OK, data_in: await tapeRead(s, q.count) })),
  })
  r.register(3, M.NDMP3_TAPE_WRITE, {
    request: v3.ndmp3_tape_write_request,
    reply: v3.ndmp3_tape_write_reply,
    handle: (s, q) => guard(s, async () => ({ error: OK, count: await tapeWrite(s, q.data_out) })),
  })
  r.register(3, M.NDMP3_TAPE_EXECUTE_CDB, {
    request: v3.ndmp3_tape_execute_cdb_request,
    reply: v3.ndmp3_tape_execute_cdb_reply,
    handle: () => {
      throw new NdmpError(v3.ndmp3_error.NDMP3_NOT_SUPPORTED_ERR, 'virtual tapes take no SCSI commands')
    },
  })
}

export const tapeService: NdmpService = {
  name: 'tape',
  register(r: NdmpRegistry): void {
    register4(r)
    register3(r)
  },
}

