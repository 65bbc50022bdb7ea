/*
 * A direct access restore of the backup's root ('.', fh_info 0) brings the whole tree: a chosen
 * directory brings the members after it while they are below it (direct-access.ts), and every
 * member is below the root. The walk asked for a '/' after the root's empty relative path, so no
 * member matched and only the root directory itself was restored ("0 files, 1 directories").
 * ndmjob is the DMA: -x -J index -E DIRECT=y '.'.
 */
import t from 'tap'
import { join } from 'node:path'
import { mkdirp, snapshotTree, writeFile as vfsWrite } from '../../backup/helpers.ts'
import type { TreeEntry } from '../../backup/helpers.ts'
import { haveNdmjob, memExport as mem, NDMJOB, ndmjobText as ndmjob, ndmpWithTape } from '../../helpers/ndmjob.ts'

/** The entries of `tree` under `prefix`, keyed without it. */
function under(tree: Record<string, TreeEntry>, prefix: string): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {}
  for (const [k, v] of Object.entries(tree)) if (k.startsWith(prefix)) out[k.slice(prefix.length)] = v.data
  return out
}

t.test('ndmjob -x -J index -E DIRECT=y . restores the whole tree by direct access', { skip: haveNdmjob ? false : `${NDMJOB} is not installed` }, async (t) => {
  const dir = t.testdir({})
  const exp = mem('/exp')
  await mkdirp(exp.vfs, 'docs/old')
  await vfsWrite(exp.vfs, 'a.txt', Buffer.from('alpha\n'))
  await vfsWrite(exp.vfs, 'docs/b.txt', Buffer.from('beta '.repeat(1000)))
  await vfsWrite(exp.vfs, 'docs/old/c.txt', Buffer.from('gamma\n'))
  await vfsWrite(exp.vfs, 'z.bin', Buffer.alloc(70_000, 7))
  const dest = mem('/r')
  const { tape, agent } = await ndmpWithTape(t, dir, [exp, dest])
  const index = join(dir, 'index')
  t.match(await ndmjob(['-c', '-D', agent, '-f', tape, '-C', '/exp', '-I', index, '-v']), /Operation ended OKAY/, 'backup with file history')
  const x = await ndmjob(['-x', '-D', agent, '-f', tape, '-C', '/r/all', '-J', index, '-E', 'DIRECT=y', '-v', '.'])
  t.match(x, /LOG_FILE messages: 1 OK, 0 ERROR, total 1 of 1/)
  t.match(x, /direct access restore of 1 name/, 'by direct access')
  t.match(x, /restore into \S+ done: 4 files, 3 directories, 75012 bytes/, 'every file and directory')
  const want = under(await snapshotTree(exp.vfs), '')
  const got = under(await snapshotTree(dest.vfs), 'all/')
  t.strictSame(got, want, 'the tree, byte for byte')
})
