/*
 * The probe judged by an independent server: nfsprobe conform against
 * NFS-Ganesha 4.3 (FSAL_VFS on a temporary host directory, see
 * test/helpers/ganesha.ts). A check that fails only because Ganesha departs
 * from RFC 1813 belongs in GANESHA_VFS_DEVIATIONS and in
 * tools/nfsprobe/README.md; the run must fail exactly those, so a check
 * that is wrong about the protocol shows here, and so does a new deviation.
 */
import t from 'tap'
import { mkdirSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { startGanesha } from '../helpers/ganesha.ts'
import { buildProbe, checkReport, CONFORM_CHECKS, runConform } from './conform.ts'

/** Checks Ganesha's FSAL_VFS fails by departing from RFC 1813: none known (nfs-ganesha 4.3, Debian 12). */
const GANESHA_VFS_DEVIATIONS: readonly string[] = []

const base = t.testdir({ export: {}, state: {} })
const exportDir = join(base, 'export')
mkdirSync(exportDir, { recursive: true })
const g = await startGanesha(t, exportDir, join(base, 'state'))
const bin = await buildProbe(t)

t.test('nfsprobe conform against NFS-Ganesha VFS fails exactly the known deviations', async (t) => {
  const r = await runConform(bin, g.url())
  t.strictSame(r.failed, [...GANESHA_VFS_DEVIATIONS], `failed: ${r.failLines.join(' | ') || 'none'}`)
  t.strictSame(r.passed, CONFORM_CHECKS.filter((c) => !GANESHA_VFS_DEVIATIONS.includes(c)), 'every other check ran and passed')
  checkReport(t, r)
  t.strictSame(readdirSync(exportDir), [], 'the probe left nothing in the exported directory')
})
