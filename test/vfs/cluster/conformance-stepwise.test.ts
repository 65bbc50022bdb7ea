/*
 * The shared VFS conformance suite on the cluster backend with the engine
 * forced to CockroachDB on PostgreSQL: CREATE, REMOVE, RMDIR, LINK and
 * RENAME take the single-table statements, and every statement that would
 * modify one table twice is refused before it reaches the database, as
 * CockroachDB refuses it (statement-check.ts), as is every notification
 * (CockroachDB has no LISTEN/NOTIFY: the per-request cache mode sends none).
 */
import t from 'tap'
import { vfsConformance } from '../conformance.ts'
import { standaloneVfs, dropTemplate } from './meta-helpers.ts'
import { refused } from './statement-check.ts'

t.teardown(dropTemplate)

t.test('conformance, step by step', async t => {
  vfsConformance(t, () => standaloneVfs({ dialect: 'cockroachdb', cockroachRule: true }))
  // Subtests run in order: after the whole suite, including what ran in the background.
  t.test('nothing was refused', async t => {
    t.strictSame(refused, [], 'no statement CockroachDB refuses was sent')
  })
})
