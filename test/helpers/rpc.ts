/* Shared helpers for RPC-layer tests: a tiny test program and raw message builders. */
import { xdr_uint, xdr_void } from '../../xdr/runtime/codec.ts'
import type { Codec } from '../../xdr/runtime/codec.ts'
import type { ProgramDef } from '../../xdr/runtime/program.ts'
import { XdrWriter } from '../../xdr/runtime/writer.ts'
import { AUTH_NONE_AUTH, authsys_parms } from '../../xdr/rpc/auth.ts'
import type { AuthSysParms, OpaqueAuth } from '../../xdr/rpc/auth.ts'
import { auth_flavor } from '../../xdr/rpc/constants.ts'
import { encodeCallHeader } from '../../xdr/rpc/message.ts'
import { encodeToBuffer } from '../../xdr/runtime/codec.ts'

export const xdr_bytes: Codec<Buffer> = {
  encode: (w, v) => {
    w.opaque(v)
  },
  decode: r => r.opaque(),
}

export const TEST_PROG_NUMBER = 200000

/** prog 200000: version 1 with a few procedures, version 2 with NULL only. */
export const TEST_PROG = {
  name: 'TEST_PROG',
  prog: TEST_PROG_NUMBER,
  versions: {
    TEST_V1: {
      name: 'TEST_V1',
      vers: 1,
      procs: {
        TESTPROC_NULL: { name: 'TESTPROC_NULL', proc: 0, args: xdr_void, res: xdr_void },
        TESTPROC_ECHO: { name: 'TESTPROC_ECHO', proc: 1, args: xdr_uint, res: xdr_uint },
        TESTPROC_WAIT: { name: 'TESTPROC_WAIT', proc: 2, args: xdr_uint, res: xdr_uint },
        TESTPROC_INCR: { name: 'TESTPROC_INCR', proc: 3, args: xdr_uint, res: xdr_uint },
        TESTPROC_FAIL: { name: 'TESTPROC_FAIL', proc: 4, args: xdr_uint, res: xdr_void },
        TESTPROC_BYTES: { name: 'TESTPROC_BYTES', proc: 5, args: xdr_uint, res: xdr_bytes },
        TESTPROC_WHOAMI: { name: 'TESTPROC_WHOAMI', proc: 6, args: xdr_void, res: xdr_uint },
      },
    },
    TEST_V3: {
      name: 'TEST_V3',
      vers: 3,
      procs: {
        TESTPROC3_NULL: { name: 'TESTPROC3_NULL', proc: 0, args: xdr_void, res: xdr_void },
      },
    },
  },
} as const satisfies ProgramDef

export function words(...ws: number[]): Buffer {
  const b = Buffer.alloc(ws.length * 4)
  ws.forEach((w, i) => b.writeUInt32BE(w >>> 0, i * 4))
  return b
}

export function authSysCred(p: Partial<AuthSysParms> = {}): OpaqueAuth {
  const parms: AuthSysParms = { stamp: 1, machinename: 'testhost', uid: 1000, gid: 1000, gids: [], ...p }
  return { flavor: auth_flavor.AUTH_SYS, body: encodeToBuffer(authsys_parms, parms) }
}

export interface CallInit {
  xid: number
  prog?: number
  vers?: number
  proc: number
  cred?: OpaqueAuth
  verf?: OpaqueAuth
  args?: Buffer
}

/** A CALL record (no record mark). */
export function callRecord(c: CallInit): Buffer {
  const w = new XdrWriter()
  encodeCallHeader(w, {
    xid: c.xid,
    prog: c.prog ?? TEST_PROG_NUMBER,
    vers: c.vers ?? 1,
    proc: c.proc,
    cred: c.cred ?? AUTH_NONE_AUTH,
    verf: c.verf ?? AUTH_NONE_AUTH,
  })
  return Buffer.concat([w.toBuffer(), c.args ?? Buffer.alloc(0)])
}

/** A record with its last-fragment mark, ready for a TCP socket. */
export function framed(record: Buffer): Buffer {
  const mark = Buffer.alloc(4)
  mark.writeUInt32BE((0x8000_0000 | record.length) >>> 0, 0)
  return Buffer.concat([mark, record])
}

export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void
  const promise = new Promise<T>(res => {
    resolve = res
  })
  return { promise, resolve }
}
