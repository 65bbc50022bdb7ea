/*
 * Large files through the mount (issue 11 point 3): WRITE requests arrive
 * in buffers the reader thread gets back once their data is committed, and
 * whole blocks are sent from them without a copy. A buffer given back too
 * early would put the bytes of a later request in place of an earlier one,
 * so every check here is byte-exact: dd and cp onto the mount (on the host,
 * and read back through a second mount: close-to-open), an overwrite in the
 * middle seen by the other mount on its next open, and a write whose
 * COMMITs report new verifiers (the server "lost" the data), so that every
 * block is sent again from the buffer it was received in.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { TEST_OPTS, canFuse, exportDir, mountFuse, mountpointDir, patternBytes, shOk } from '../helpers/fuse.ts'
import { PROC_COMMIT, PROC_WRITE, startVerfProxy } from '../client/file-proxy.ts'

const skip = canFuse ? false : 'needs root and FUSE'
const MIB = 1024 * 1024

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

t.test('dd and cp of 48 MiB onto the mount: byte-exact on the host and through a second mount', { skip }, async t => {
  const base = t.testdir({ local: {} })
  const ex = await exportDir(t, base)
  const a = mountpointDir(t)
  const b = mountpointDir(t)
  await mountFuse(t, ex.source, a, `${ex.portOpts},${TEST_OPTS}`)
  await mountFuse(t, ex.source, b, `${ex.portOpts},${TEST_OPTS}`)
  // More 1 MiB requests than the reader keeps buffers for, each block different, and a short tail.
  const data = patternBytes(48 * MIB + 12_345, 11)
  const src = join(base, 'local', 'src')
  writeFileSync(src, data)
  // And 100 KiB requests: large enough for a buffer of their own, copied into dirty blocks, given back at once.
  await shOk(t, `dd if=${src} of=${a}/dd bs=1M status=none && cp ${src} ${a}/cp && dd if=${src} of=${a}/small bs=100k count=70 status=none`)
  t.equal(sha(readFileSync(join(ex.dir, 'small'))), sha(data.subarray(0, 70 * 100 * 1024)), 'small: the host file is byte-exact')
  for (const name of ['dd', 'cp']) {
    t.equal(sha(readFileSync(join(ex.dir, name))), sha(data), `${name}: the host file is byte-exact`)
    // Never a synchronous read of a mount: the server runs in this process and must answer it.
    t.equal(sha(await readFile(join(b, name))), sha(data), `${name}: the other mount reads it byte-exact`)
  }
  // 3 MiB in the middle rewritten through A, the rest kept; B has the old bytes in its caches.
  const patch = patternBytes(3 * MIB, 12)
  writeFileSync(join(base, 'local', 'patch'), patch)
  await shOk(t, `dd if=${base}/local/patch of=${a}/dd bs=1M seek=5 conv=notrunc status=none`)
  const want = Buffer.from(data)
  patch.copy(want, 5 * MIB)
  t.equal(sha(await readFile(join(b, 'dd'))), sha(want), 'B sees the rewrite on its next open (close-to-open)')
  t.equal(sha(readFileSync(join(ex.dir, 'dd'))), sha(want), 'and so does the host')
})

t.test('COMMITs that report a new verifier: every block is sent again from its request buffer, byte-exact', { skip }, async t => {
  const base = t.testdir({ local: {} })
  const ex = await exportDir(t, base)
  const proxy = await startVerfProxy(t, ex.port)
  const a = mountpointDir(t)
  await mountFuse(t, ex.source, a, `port=${String(proxy.port)},mountport=${String(ex.port)},${TEST_OPTS}`)
  // The first three COMMITs (sent behind the writes, past 8 MiB held) say "lost".
  proxy.flip.set(PROC_COMMIT, 3)
  const data = patternBytes(40 * MIB + 777, 21)
  const src = join(base, 'local', 'src')
  writeFileSync(src, data)
  await shOk(t, `dd if=${src} of=${a}/v bs=1M status=none`)
  const writes = proxy.calls.get(PROC_WRITE) ?? 0
  t.ok(writes > 41, `blocks were sent again (${String(writes)} WRITEs for 41 blocks)`)
  t.equal(proxy.flip.get(PROC_COMMIT), 0, 'all three flipped COMMITs were seen')
  t.equal(sha(readFileSync(join(ex.dir, 'v'))), sha(data), 'byte-exact on the host')
})
