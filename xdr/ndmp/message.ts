/*
 * One NDMP message on a stream: a record (RFC 5531 §11 record marking, xdr/record.ts) holding
 * the 24-byte header (ndmp4.x / ndmp3.x ndmpN_header: the same bytes in both versions) and then
 * the body the header's message_code names. Used by the server (server/ndmp) and the client
 * (client/ndmp) alike; no sockets here.
 */
import type { Codec } from '../runtime/codec.ts'
import { XdrReader } from '../runtime/reader.ts'
import { XdrWriter } from '../runtime/writer.ts'
import { frameRecord } from '../record.ts'

export const NDMP_HEADER_SIZE = 24
/** message_type values (ndmpN_header_message_type). */
export const NDMP_MESSAGE_REQUEST = 0
export const NDMP_MESSAGE_REPLY = 1
/**
 * The largest message either side accepts: a TAPE_WRITE / TAPE_READ carries one tape record
 * (ndmjob's are up to 256 KiB; 16 MiB leaves room). Checked by framing before allocation.
 */
export const NDMP_MAX_MESSAGE = 16 * 1024 * 1024

/**
 * The header as read off the wire. message_type is kept as the raw number (a peer may send a
 * value that is neither REQUEST nor REPLY, and the receiver decides what to answer); the codes
 * are open lists (draft §3.1), so they stay plain numbers too.
 */
export interface NdmpHeader {
  sequence: number
  time_stamp: number
  message_type: number
  message_code: number
  reply_sequence: number
  error_code: number
}

/** A decoded record: its header and a view of the body's bytes. */
export interface NdmpMessage {
  header: NdmpHeader
  body: Buffer
}

/** Splits a record into header and body; null when it is too short to hold a header. */
export function parseMessage(record: Buffer): NdmpMessage | null {
  if (record.length < NDMP_HEADER_SIZE) return null
  const r = new XdrReader(record)
  const header: NdmpHeader = {
    sequence: r.u32(),
    time_stamp: r.u32(),
    message_type: r.u32(),
    message_code: r.u32(),
    reply_sequence: r.u32(),
    error_code: r.u32(),
  }
  return { header, body: record.subarray(NDMP_HEADER_SIZE) }
}

/**
 * Decodes a body with `codec`; every byte must be used (a longer body is as wrong as a short
 * one). Throws XdrDecodeError.
 */
export function decodeBody<T>(codec: Codec<T>, body: Buffer): T {
  const r = new XdrReader(body)
  const v = codec.decode(r)
  r.done()
  return v
}

/**
 * The chunks of one framed message: record mark, header, body (null: none, as for a reply
 * whose header carries an error). Large opaques (TAPE_WRITE data) are referenced, not copied.
 */
export function encodeMessage<T>(header: NdmpHeader, codec: Codec<T> | null, body: T): Buffer[] {
  const w = new XdrWriter(256)
  w.u32(header.sequence)
  w.u32(header.time_stamp)
  w.u32(header.message_type)
  w.u32(header.message_code)
  w.u32(header.reply_sequence)
  w.u32(header.error_code)
  if (codec !== null) codec.encode(w, body)
  const chunks = w.finish()
  return [frameRecord(chunks), ...chunks]
}

/** Seconds since the epoch as the header's u_long time_stamp. */
export function ndmpTimestamp(now = Date.now()): number {
  return Math.floor(now / 1000) >>> 0
}
