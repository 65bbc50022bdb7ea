import t from 'tap'
import { vfsConformance } from './conformance.ts'
import { localDirs, openLocal } from './local-helpers.ts'

t.test('conformance', async t => {
  vfsConformance(t, () => openLocal(localDirs()))
})
