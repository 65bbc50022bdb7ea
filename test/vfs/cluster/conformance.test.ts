/* The shared VFS conformance suite on the cluster backend: PostgreSQL metadata, data=postgres. */
import t from 'tap'
import { vfsConformance } from '../conformance.ts'
import { standaloneVfs, dropTemplate } from './meta-helpers.ts'

t.teardown(dropTemplate)

t.test('conformance', async t => {
  vfsConformance(t, standaloneVfs)
})
