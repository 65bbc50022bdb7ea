/*
 * The /dev/fuse reader thread (TOOLING.md §3b): a blocking read(2) per
 * request, so no libuv threadpool thread is parked in the kernel. A small
 * request is copied out of the read buffer and transferred to the main
 * thread. A large one (a WRITE) is read into a buffer of its own, which is
 * transferred as it is; the main thread hands such buffers back (the
 * `back` port, polled without blocking before each large read) once the
 * data is written to the server, so a long write keeps cycling through the
 * same memory: fresh memory costs more, on first touch, than the copies
 * it carries (see client/rpc/buffer-pool.ts). The loop ends when the
 * connection does: ENODEV after umount (or abort); ENOENT (a request
 * interrupted before we read it), EINTR and EAGAIN only mean "read again".
 *
 * The thread runs from source text (Worker eval): the same code then works
 * from dist/ and under a TypeScript loader, which a worker does not inherit.
 */
import type { MessagePort } from 'node:worker_threads'

export interface ReaderData {
  fd: number
  bufferSize: number
  /** Requests at least this long are sent in their own buffer, which the main thread gives back through `back`. */
  largeMin: number
  back: MessagePort
}

export type ReaderMessage = { kind: 'request'; data: ArrayBuffer; length: number; large: boolean } | { kind: 'end'; code: string }

/** Free buffers the reader keeps at most (given-back ones beyond that are dropped). */
export const READER_KEEP = 32

export const READER_SOURCE = `
'use strict'
const { readSync } = require('node:fs')
const { parentPort, workerData, receiveMessageOnPort } = require('node:worker_threads')
const RETRY = new Set(['ENOENT', 'EINTR', 'EAGAIN'])
const size = workerData.bufferSize
const free = []
let buf = new Uint8Array(size)
for (;;) {
  let n
  try {
    n = readSync(workerData.fd, buf, 0, size, null)
  } catch (err) {
    const code = (err && err.code) || String(err)
    if (RETRY.has(code)) continue
    parentPort.postMessage({ kind: 'end', code })
    break
  }
  if (n === 0) {
    parentPort.postMessage({ kind: 'end', code: 'EOF' })
    break
  }
  if (n >= workerData.largeMin) {
    parentPort.postMessage({ kind: 'request', data: buf.buffer, length: n, large: true }, [buf.buffer])
    for (let m = receiveMessageOnPort(workerData.back); m !== undefined; m = receiveMessageOnPort(workerData.back)) {
      if (free.length < ${String(READER_KEEP)} && m.message.byteLength === size) free.push(m.message)
    }
    const next = free.pop()
    buf = next === undefined ? new Uint8Array(size) : new Uint8Array(next)
    continue
  }
  const copy = new Uint8Array(n)
  copy.set(buf.subarray(0, n))
  parentPort.postMessage({ kind: 'request', data: copy.buffer, length: n, large: false }, [copy.buffer])
}
`
