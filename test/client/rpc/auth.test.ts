/*
 * credentialOf keeps each credential's encoding for the second its stamp
 * names: the bytes must be those authSys makes for that credential and
 * stamp, whichever call asks.
 */
import t from 'tap'
import { authSys, credentialOf } from '../../../client/rpc/auth.ts'
import { AUTH_NONE_AUTH, authsys_parms } from '../../../xdr/rpc/auth.ts'
import { auth_flavor } from '../../../xdr/rpc/constants.ts'
import { XdrReader } from '../../../xdr/runtime/reader.ts'

t.test('an AUTH_SYS credential encodes to the same bytes as authSys, once per second', t => {
  const cred = { uid: 1001, gid: 1002, gids: [5, 6, 7], machinename: 'box' }
  const before = Math.floor(Date.now() / 1000)
  const a = credentialOf(cred)
  const b = credentialOf(cred)
  const after = Math.floor(Date.now() / 1000)
  t.equal(a.flavor, auth_flavor.AUTH_SYS)
  const parms = authsys_parms.decode(new XdrReader(a.body))
  t.strictSame({ uid: parms.uid, gid: parms.gid, gids: parms.gids, machinename: parms.machinename }, { uid: 1001, gid: 1002, gids: [5, 6, 7], machinename: 'box' })
  t.ok(parms.stamp >= before && parms.stamp <= after, `stamp ${String(parms.stamp)} is the current second`)
  t.same(a.body, authSys({ ...cred, stamp: parms.stamp }).body, 'the bytes authSys makes')
  if (before === after) t.equal(b, a, 'a second call in the same second: the same encoding')
  else t.same(b.body.subarray(4), a.body.subarray(4), 'the same fields (the second changed between the calls)')
  t.end()
})

t.test('credentials are kept apart, an explicit stamp is kept, none is AUTH_NONE', t => {
  const x = credentialOf({ uid: 1, gid: 1, stamp: 77 })
  const y = credentialOf({ uid: 2, gid: 2, stamp: 77 })
  t.equal(authsys_parms.decode(new XdrReader(x.body)).uid, 1)
  t.equal(authsys_parms.decode(new XdrReader(y.body)).uid, 2)
  t.equal(authsys_parms.decode(new XdrReader(x.body)).stamp, 77)
  t.equal(credentialOf('none'), AUTH_NONE_AUTH)
  t.equal(credentialOf(undefined), AUTH_NONE_AUTH)
  t.end()
})
