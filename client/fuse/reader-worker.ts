/*
 * The /dev/fuse reader thread (TOOLING.md §3b): a blocking read(2) per
 * request, so no libuv threadpool thread is parked in the kernel. Each
 * request is copied out of the one big read buffer and transferred to the
 * main thread. The loop ends when the connection does: ENODEV after
 * umount (or abort); ENOENT (a request interrupted before we read it),
 * EINTR and EAGAIN only mean "read again".
 *
 * The thread runs from source text (Worker eval): the same code then works
 * from dist/ and under a TypeScript loader, which a worker does not inherit.
 */

export interface ReaderData {
  fd: number
  bufferSize: number
}

export type ReaderMessage = { kind: 'request'; data: ArrayBuffer } | { kind: 'end'; code: string }

export const READER_SOURCE = `
'use strict'
const { readSync } = require('node:fs')
const { parentPort, workerData } = require('node:worker_threads')
const RETRY = new Set(['ENOENT', 'EINTR', 'EAGAIN'])
const buf = Buffer.allocUnsafe(workerData.bufferSize)
for (;;) {
  let n
  try {
    n = readSync(workerData.fd, buf, 0, buf.length, null)
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
  const copy = new Uint8Array(n)
  copy.set(buf.subarray(0, n))
  parentPort.postMessage({ kind: 'request', data: copy.buffer }, [copy.buffer])
}
`
