import t from 'tap'
import { PMAP_PROG } from '../../xdr/generated/portmap.ts'
import { type Case, checkVectors, vec } from '../fixtures/wire/check.ts'
import { PORTMAP_VECTORS } from '../fixtures/wire/vectors-portmap.ts'

/* A call and a reply of every PORTMAP v2 procedure against hand-built fixtures (RFC 1833 §3). */

const P = PMAP_PROG.versions.PMAP_VERS.procs

const cases: Case[] = [
  vec('portmap-null-call', P.PMAPPROC_NULL.args, undefined),
  vec('portmap-null-reply', P.PMAPPROC_NULL.res, undefined),
  vec('portmap-set-call', P.PMAPPROC_SET.args, { prog: 100003, vers: 3, prot: 6, port: 2049 }),
  vec('portmap-set-reply', P.PMAPPROC_SET.res, true),
  vec('portmap-unset-call', P.PMAPPROC_UNSET.args, { prog: 100005, vers: 3, prot: 0, port: 0 }),
  vec('portmap-unset-reply', P.PMAPPROC_UNSET.res, false),
  vec('portmap-getport-call', P.PMAPPROC_GETPORT.args, { prog: 100005, vers: 3, prot: 17, port: 0 }),
  vec('portmap-getport-reply', P.PMAPPROC_GETPORT.res, 20048),
  vec('portmap-dump-call', P.PMAPPROC_DUMP.args, undefined),
  vec('portmap-dump-reply', P.PMAPPROC_DUMP.res, [
    { map: { prog: 100000, vers: 2, prot: 6, port: 111 } },
    { map: { prog: 100003, vers: 3, prot: 17, port: 2049 } },
  ]),
]

t.test('every procedure has a call and a reply vector', async (t) => {
  for (const p of Object.values(P)) {
    const stem = `portmap-${p.name.replace(/^PMAPPROC_/, '').toLowerCase()}`
    t.ok(cases.some((c) => c.name === `${stem}-call`), `${p.name} call`)
    t.ok(cases.some((c) => c.name === `${stem}-reply`), `${p.name} reply`)
  }
  t.equal(Object.keys(P).length, 5)
})

t.test('golden vectors', async (t) => {
  checkVectors(t, 'portmap', PORTMAP_VECTORS, cases)
})
