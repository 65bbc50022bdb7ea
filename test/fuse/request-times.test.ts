/*
 * The daemon's own account of where a request's time goes: at the end of
 * the connection (--log-level info) it logs, beside the request counts per
 * operation, the microseconds spent from reading each request to writing
 * its reply, summed per operation (bench/README.md, session 34: how per-file
 * latency was taken apart). Only answered requests have a time: FORGET is
 * never answered.
 */
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { TEST_OPTS, canFuse, exportDir, mountFuse, mountpointDir, sh } from '../helpers/fuse.ts'

const skip = canFuse ? false : 'needs root and FUSE'

interface Ended {
  requests?: Record<string, number>
  requestMicros?: Record<string, number>
}

function endedOf(stderr: string): Ended | null {
  const line = stderr.split('\n').find(l => l.includes('connection ended'))
  return line === undefined ? null : (JSON.parse(line) as Ended)
}

t.test('the end-of-connection log holds each operation\'s time in the daemon beside its count', { skip }, async t => {
  const base = t.testdir({ src: {} })
  for (let i = 0; i < 5; i++) writeFileSync(join(base, 'src', `f${String(i)}`), `file ${String(i)}\n`)
  const ex = await exportDir(t, base)
  const mnt = mountpointDir(t)
  const m = await mountFuse(t, ex.source, mnt, `${ex.portOpts},${TEST_OPTS}`, ['--log-level', 'info'])
  const r = await sh(`cp -a "${join(base, 'src')}" "${mnt}/copy" && ls -l "${mnt}/copy" >/dev/null && rm -rf "${mnt}/copy"`)
  t.equal(r.code, 0, r.stderr)
  t.equal(await m.stop(), 0)
  const ended = endedOf(m.stderr())
  t.ok(ended !== null, 'the daemon logged the end of its connection')
  const requests = ended?.requests ?? {}
  const micros = ended?.requestMicros
  t.ok(micros !== undefined, 'with requestMicros')
  // Every operation the copy needs was answered, so each has a time, and a positive one.
  for (const op of ['INIT', 'LOOKUP', 'GETATTR', 'MKDIR', 'CREATE', 'WRITE', 'SETATTR', 'FLUSH', 'RELEASE', 'UNLINK', 'RMDIR']) {
    t.ok((requests[op] ?? 0) > 0, `${op} was asked (${String(requests[op])})`)
    const us = micros?.[op]
    t.ok(us !== undefined && Number.isInteger(us) && us > 0, `${op} has a time in µs (${String(us)})`)
  }
  for (const [op, us] of Object.entries(micros ?? {})) {
    t.ok((requests[op] ?? 0) > 0, `${op}: a time only for an operation that was asked`)
    t.ok(Number.isInteger(us) && us >= 0, `${op}: a whole number of µs`)
  }
  t.equal(micros?.FORGET, undefined, 'FORGET, never answered, has no time')
})
