import t from 'tap'
import { XdrReader } from '../../xdr/runtime/reader.ts'
import { XdrWriter } from '../../xdr/runtime/writer.ts'
import { encodeToBuffer } from '../../xdr/runtime/codec.ts'
import { AUTH_NONE_AUTH, authsys_parms, opaque_auth } from '../../xdr/rpc/auth.ts'
import { accept_stat, auth_flavor, auth_stat, reject_stat } from '../../xdr/rpc/constants.ts'
import { RpcMessageError, decodeCallHeader, encodeCallHeader } from '../../xdr/rpc/message.ts'
import { RPC_MISMATCH_V2, decodeReplyHeader, encodeAcceptedReply, encodeDeniedReply } from '../../xdr/rpc/reply.ts'

const words = (...ws: number[]): Buffer => {
  const b = Buffer.alloc(ws.length * 4)
  ws.forEach((w, i) => b.writeUInt32BE(w >>> 0, i * 4))
  return b
}
const XID = 0x1234_5678

t.test('NULL call: 40 bytes, worked example of specs §3', async t => {
  const w = new XdrWriter()
  encodeCallHeader(w, { xid: XID, prog: 100003, vers: 3, proc: 0, cred: AUTH_NONE_AUTH, verf: AUTH_NONE_AUTH })
  const bytes = w.toBuffer()
  t.strictSame(bytes, words(XID, 0, 2, 100003, 3, 0, 0, 0, 0, 0))
  t.equal(bytes.length, 40)
  const r = new XdrReader(Buffer.concat([bytes, words(7)]))
  const h = decodeCallHeader(r)
  t.match(h, { xid: XID, rpcvers: 2, prog: 100003, vers: 3, proc: 0 })
  t.strictSame(h.cred, { flavor: 0, body: Buffer.alloc(0) })
  t.equal(r.pos, 40, 'reader left at the arguments')
  t.equal(r.u32(), 7)
})

t.test('call header with an AUTH_SYS credential', async t => {
  const body = encodeToBuffer(authsys_parms, { stamp: 9, machinename: 'host', uid: 1000, gid: 100, gids: [4, 27] })
  t.strictSame(body, words(9, 4, 0x686f_7374, 1000, 100, 2, 4, 27))
  const w = new XdrWriter()
  encodeCallHeader(w, { xid: 1, prog: 2, vers: 3, proc: 4, cred: { flavor: auth_flavor.AUTH_SYS, body }, verf: AUTH_NONE_AUTH })
  const h = decodeCallHeader(new XdrReader(w.toBuffer()))
  t.equal(h.cred.flavor, 1)
  t.strictSame(authsys_parms.decode(new XdrReader(h.cred.body)), { stamp: 9, machinename: 'host', uid: 1000, gid: 100, gids: [4, 27] })
})

t.test('authsys_parms bounds', async t => {
  t.throws(() => authsys_parms.decode(new XdrReader(words(0, 256))), { code: 'XDR_TOO_LONG' })
  t.throws(() => authsys_parms.decode(new XdrReader(words(0, 0, 0, 0, 17))), { code: 'XDR_TOO_LONG' })
  t.throws(() => encodeToBuffer(authsys_parms, { stamp: 0, machinename: '', uid: 0, gid: 0, gids: new Array<number>(17).fill(1) }), {
    code: 'XDR_ENCODE',
  })
  t.throws(() => encodeToBuffer(authsys_parms, { stamp: 0, machinename: 'x'.repeat(256), uid: 0, gid: 0, gids: [] }), { code: 'XDR_ENCODE' })
})

t.test('opaque_auth body is capped at 400 bytes', async t => {
  t.throws(() => opaque_auth.decode(new XdrReader(words(1, 401))), { code: 'XDR_TOO_LONG' })
  t.throws(() => opaque_auth.decode(new XdrReader(words(1, 8, 0))), { code: 'XDR_SHORT_BUFFER' })
  t.strictSame(encodeToBuffer(opaque_auth, { flavor: 1, body: Buffer.from([1, 2, 3, 4, 5]) }), Buffer.concat([words(1, 5), Buffer.from([1, 2, 3, 4, 5, 0, 0, 0])]))
})

t.test('decodeCallHeader: distinguishable failures', async t => {
  t.throws(() => decodeCallHeader(new XdrReader(words(XID))), { code: 'XDR_SHORT_BUFFER' })
  t.throws(() => decodeCallHeader(new XdrReader(words(XID, 1, 0, 0))), { code: 'RPC_NOT_CALL', xid: XID, value: 1 })
  t.throws(() => decodeCallHeader(new XdrReader(words(XID, 0, 3))), { code: 'RPC_VERSION_MISMATCH', xid: XID, value: 3 })
  t.throws(() => decodeCallHeader(new XdrReader(words(XID, 0, 2, 1, 1))), { code: 'XDR_SHORT_BUFFER' })
  t.throws(() => decodeCallHeader(new XdrReader(words(XID, 0, 2, 1, 1, 1, 1, 401))), { code: 'RPC_BAD_CRED', xid: XID })
  t.throws(() => decodeCallHeader(new XdrReader(words(XID, 0, 2, 1, 1, 1, 0, 0, 0, 500))), { code: 'RPC_BAD_VERF', xid: XID })
  const err = t.throws(() => decodeCallHeader(new XdrReader(words(XID, 0, 2, 1, 1, 1, 0, 0, 0))))
  t.ok(err instanceof RpcMessageError)
})

t.test('accepted replies: exact bytes and decode', async t => {
  const enc = (stat: (typeof accept_stat)[keyof typeof accept_stat], mm?: { low: number; high: number }): Buffer => {
    const w = new XdrWriter()
    encodeAcceptedReply(w, XID, stat, mm)
    return w.toBuffer()
  }
  const success = enc(accept_stat.SUCCESS)
  t.strictSame(success, words(XID, 1, 0, 0, 0, 0), 'NULL reply is 24 bytes')
  t.equal(success.length, 24)
  const r = new XdrReader(Buffer.concat([success, words(42)]))
  t.strictSame(decodeReplyHeader(r), { xid: XID, kind: 'SUCCESS', verf: { flavor: 0, body: Buffer.alloc(0) } })
  t.equal(r.u32(), 42, 'reader left at the results')

  t.strictSame(enc(accept_stat.PROG_UNAVAIL), words(XID, 1, 0, 0, 0, 1))
  t.strictSame(enc(accept_stat.PROG_MISMATCH, { low: 1, high: 3 }), words(XID, 1, 0, 0, 0, 2, 1, 3))
  t.strictSame(enc(accept_stat.PROC_UNAVAIL), words(XID, 1, 0, 0, 0, 3))
  t.strictSame(enc(accept_stat.GARBAGE_ARGS), words(XID, 1, 0, 0, 0, 4))
  t.strictSame(enc(accept_stat.SYSTEM_ERR), words(XID, 1, 0, 0, 0, 5))
  t.throws(() => enc(accept_stat.PROG_MISMATCH), { code: 'XDR_ENCODE' })

  t.match(decodeReplyHeader(new XdrReader(words(XID, 1, 0, 0, 0, 2, 1, 3))), { kind: 'PROG_MISMATCH', low: 1, high: 3 })
  for (const [stat, kind] of [[1, 'PROG_UNAVAIL'], [3, 'PROC_UNAVAIL'], [4, 'GARBAGE_ARGS'], [5, 'SYSTEM_ERR']] as const) {
    t.match(decodeReplyHeader(new XdrReader(words(XID, 1, 0, 0, 0, stat))), { xid: XID, kind })
  }
  t.throws(() => decodeReplyHeader(new XdrReader(words(XID, 1, 0, 0, 0, 6))), { code: 'XDR_BAD_ENUM' })
})

t.test('denied replies: no verifier', async t => {
  const w = new XdrWriter()
  encodeDeniedReply(w, XID, RPC_MISMATCH_V2)
  const mismatch = w.toBuffer()
  t.strictSame(mismatch, words(XID, 1, 1, 0, 2, 2))
  t.strictSame(decodeReplyHeader(new XdrReader(mismatch)), { xid: XID, kind: 'RPC_MISMATCH', low: 2, high: 2 })
  encodeDeniedReply(w, XID, { stat: reject_stat.AUTH_ERROR, auth_stat: auth_stat.AUTH_BADCRED })
  const autherr = w.toBuffer()
  t.strictSame(autherr, words(XID, 1, 1, 1, 1))
  t.strictSame(decodeReplyHeader(new XdrReader(autherr)), { xid: XID, kind: 'AUTH_ERROR', stat: 1 })
  t.throws(() => decodeReplyHeader(new XdrReader(words(XID, 1, 1, 2))), { code: 'XDR_BAD_ENUM' })
  t.throws(() => decodeReplyHeader(new XdrReader(words(XID, 1, 2))), { code: 'XDR_BAD_ENUM' })
  t.throws(() => decodeReplyHeader(new XdrReader(words(XID, 0, 2))), { code: 'XDR_BAD_ENUM' })
})
