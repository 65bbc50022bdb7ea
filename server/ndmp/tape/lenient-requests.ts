/*
 * Request codecs that read an enum field as a plain number. The generated codecs refuse a value
 * outside the enum (the session then answers XDR_DECODE_ERR in the header), but the draft wants
 * a bad mode or op answered ILLEGAL_ARGS_ERR in the reply body, and the SDK's test-tape and
 * test-mover send exactly such requests (TAPE_OPEN mode 123, MOVER_LISTEN address type 123).
 * Same bytes as ndmp[34]_tape_open_request, _tape_mtio_request and _mover_listen_request.
 */
import type { Codec } from '../../../xdr/runtime/codec.ts'

export interface TapeOpenRequest {
  device: string
  mode: number
}

export const tapeOpenRequest: Codec<TapeOpenRequest> = {
  encode(w, v) {
    w.string(v.device, 0xffffffff)
    w.u32(v.mode)
  },
  decode(r) {
    return { device: r.string(0xffffffff), mode: r.u32() }
  },
}

export interface TapeMtioRequest {
  tape_op: number
  count: number
}

export const tapeMtioRequest: Codec<TapeMtioRequest> = {
  encode(w, v) {
    w.u32(v.tape_op)
    w.u32(v.count)
  },
  decode(r) {
    return { tape_op: r.u32(), count: r.u32() }
  },
}

export interface MoverListenRequest {
  mode: number
  addr_type: number
}

export const moverListenRequest: Codec<MoverListenRequest> = {
  encode(w, v) {
    w.u32(v.mode)
    w.u32(v.addr_type)
  },
  decode(r) {
    return { mode: r.u32(), addr_type: r.u32() }
  },
}
