/*
 * One NFS call sent as raw bytes on a connection of its own, for the tests that
 * retransmit a call with a chosen xid (the duplicate request cache across a
 * takeover: drc-takeover, drc-held-takeover).
 */
import { connect } from 'node:net'

/** Sends `rec` on a new connection to `port` and returns the reply record's body. */
export async function callRaw(port: number, rec: Buffer): Promise<Buffer> {
  const s = connect({ host: '127.0.0.1', port })
  let got = Buffer.alloc(0)
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      s.on('error', reject)
      s.on('data', (d: Buffer) => {
        got = Buffer.concat([got, d])
        if (got.length >= 4) {
          const len = got.readUInt32BE(0) & 0x7fffffff
          if (got.length >= 4 + len) resolve(got.subarray(4, 4 + len))
        }
      })
      s.write(rec)
    })
  } finally {
    s.destroy()
  }
}

/** The nfsstat3 of an accepted reply with an AUTH_NONE verifier (xid, REPLY, MSG_ACCEPTED, verf, SUCCESS, status). */
export const statusOf = (reply: Buffer): number => reply.readUInt32BE(24)
