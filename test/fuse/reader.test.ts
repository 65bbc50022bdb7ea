/*
 * The two ways the mount daemon reads /dev/fuse (client/fuse/session.ts):
 * on the main thread through the native reader (client/fuse/native/poll.c,
 * built at install), and through a worker thread when that is unavailable
 * (TSNFS_FUSE_READER=worker forces it). Each must carry small requests,
 * large WRITEs held until committed (their buffers go back to the reader
 * and are reused), and the end of the connection at umount.
 */
import t from 'tap'
import type { Test } from 'tap'
import { readFile, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fusePoll } from '../../client/fuse/native-poll.ts'
import { TEST_OPTS, canFuse, exportDir, mountFuse, mountpointDir, patternBytes, sh } from '../helpers/fuse.ts'

const skip = canFuse ? false : 'needs root and FUSE'

async function workload(t: Test, mnt: string): Promise<void> {
  // Large writes cycle through the reader's buffers: 24 MiB in 1 MiB requests, each a different pattern.
  const big = Buffer.concat(Array.from({ length: 24 }, (_, i) => patternBytes(1024 * 1024, 100 + i)))
  await writeFile(join(mnt, 'big'), big)
  await sh(`mkdir -p ${mnt}/tree && for i in $(seq 1 200); do echo "file $i" > ${mnt}/tree/f$i; done`)
  t.ok((await readFile(join(mnt, 'big'))).equals(big), 'every byte of the large file back, in order')
  const names = await readdir(join(mnt, 'tree'))
  t.equal(names.length, 200, 'every small file made')
  t.equal((await readFile(join(mnt, 'tree', 'f137'))).toString(), 'file 137\n', 'with its content')
}

t.test('the native reader is built and reads on the main thread', { skip }, async t => {
  t.not(fusePoll(), null, 'build/Release/tsnfs_fuse.node loads (node-gyp at npm ci)')
  const ex = await exportDir(t, t.testdir({}))
  const mnt = mountpointDir(t)
  const m = await mountFuse(t, ex.source, mnt, `${ex.portOpts},${TEST_OPTS}`, ['--log-level', 'debug'])
  await workload(t, mnt)
  t.equal(await m.stop(), 0, 'umount ends the connection and the daemon exits 0')
  t.match(m.stderr(), /reading \/dev\/fuse on the main thread/)
  t.notMatch(m.stderr(), /worker thread/)
})

t.test('the worker-thread reader, when asked for (or when the native one is missing)', { skip }, async t => {
  const ex = await exportDir(t, t.testdir({}))
  const mnt = mountpointDir(t)
  const m = await mountFuse(t, ex.source, mnt, `${ex.portOpts},${TEST_OPTS}`, ['--log-level', 'debug'], { TSNFS_FUSE_READER: 'worker' })
  await workload(t, mnt)
  t.equal(await m.stop(), 0, 'umount ends the connection and the daemon exits 0')
  t.match(m.stderr(), /"why":"TSNFS_FUSE_READER=worker","msg":"fuse: reading \/dev\/fuse through a worker thread/)
})
