/*
 * Issue 16 §5: a backup of an engine export on a volume with a snapshot store reads a snapshot
 * taken for it (server/ndmp/exports.ts), not the live tree, and deletes the snapshot after.
 * ndmjob drives our server: -c (level 0, UPDATE) while the tree is still being written, -x back
 * byte for byte; then a level 1 after one file changed copies that file, not the unchanged one
 * (fileids of two snapshots compare as the live inode's: SnapshotReadView), and the volume holds
 * no snapshot at the end.
 */
import t from 'tap'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { NfsClient } from '../../client/nfs-client.ts'
import { startServer } from '../helpers/server.ts'
import { scratch, seededBytes, tsnfsRaw } from '../vfs/engine/format-helpers.ts'

const NDMJOB = '/usr/lib/amanda/ndmjob'
const run = promisify(execFile)
t.setTimeout(180_000)

t.test('an engine volume export is backed up from a snapshot taken for the backup', async (t) => {
  t.ok(fs.existsSync(NDMJOB), `${NDMJOB} is installed (CI installs amanda-server)`)
  const dir = scratch(t, 'ndmp-volume-snapshot')
  const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 100000)
  t.comment(`seed ${seed}`)
  const bytes = seededBytes(seed)
  const disks = ['m0.img', 'm1.img'].map((n) => path.join(dir, n))
  const made = await tsnfsRaw(['volume', 'create', 'bkvol', '--level', 'mirror', '--size', '48M', '--snapshot-store', '12M', ...disks])
  t.equal(made.code, 0, made.stderr)
  const mkfs = await tsnfsRaw(['volume', 'mkfs', ...disks])
  t.equal(mkfs.code, 0, mkfs.stderr)
  const tapes = ['tape0', 'tape1'].map((n) => path.join(dir, n))
  for (const tp of tapes) fs.writeFileSync(tp, '')
  const s = await startServer(t, `/data *(rw,insecure,no_root_squash,backend=engine,volume=bkvol,disks=${dir}/m*.img)\n`, {
    admin: path.join(dir, 'admin.sock'),
    ndmp: { port: 0, host: '127.0.0.1', credentials: new Map([['dma', 'pw']]), tapes: tapes.map((p) => ({ name: p, path: p })) },
  })
  const c = await NfsClient.mount(s.url('/data'))
  const a = bytes(300_000)
  const b = bytes(50_000)
  await c.writeFile('/a.bin', a)
  await c.mkdir('/d')
  await c.writeFile('/d/b.bin', b)
  const agent = `127.0.0.1:${String(s.server.ndmpPort)}/4t,dma,pw`
  const backup = async (level: number, tape: string, idx: string): Promise<string> => {
    const r = await run(NDMJOB, ['-c', '-D', agent, '-f', tape, '-C', '/data', '-E', 'UPDATE=y', '-E', `LEVEL=${String(level)}`, '-I', path.join(dir, idx), '-v'], { timeout: 60_000 })
    return r.stdout + r.stderr
  }
  // Regular files in an index: node lines of type f- (ndmjob's DHn).
  const files = (idx: string): string[] => fs.readFileSync(path.join(dir, idx), 'utf8').split('\n').filter((l) => /^DHn \d+ UNIX f- /.test(l))

  const full = await backup(0, tapes[0] ?? '', 'idx0')
  t.match(full, /Operation ended OKAY/)
  t.match(full, /reading a snapshot taken for this backup/, 'the backup says it read a snapshot')
  t.notMatch(full, /reading live|snapshot failed/)
  t.strictSame((await c.readdir('/.snapshot')).filter((n) => n !== '.' && n !== '..'), [], 'the backup deleted its snapshot')
  t.equal(files('idx0').length, 2, 'the level 0 holds both files')

  // Level 1 from a second snapshot: only the changed file is copied. A snapshot kept meanwhile
  // takes the first slot, so the backup's snapshot gets another id and its view numbers objects
  // apart from the level 0's; SnapshotReadView gives the inode's own fileid back, so nothing
  // counts as renamed.
  const kept = await tsnfsRaw(['volume', 'snapshot', 'create', 'bkvol', 'keep', '--admin', path.join(dir, 'admin.sock')])
  t.equal(kept.code, 0, kept.stderr)
  const b2 = bytes(4096)
  await c.writeFile('/d/b.bin', b2)
  const incr = await backup(1, tapes[1] ?? '', 'idx1')
  t.match(incr, /Operation ended OKAY/)
  t.match(incr, /reading a snapshot taken for this backup/)
  const changed = files('idx1')
  t.equal(changed.length, 1, `the level 1 holds the one changed file: ${changed.join(' | ')}`)
  t.match(changed[0] ?? '', / s4096 /, 'the new b.bin')

  // Restore the level 0 into the export: what the snapshot saw, not the later write.
  const x = await run(NDMJOB, ['-x', '-D', agent, '-f', tapes[0] ?? '', '-C', '/data/back', '-v'], { timeout: 60_000 })
  t.match(x.stdout + x.stderr, /Operation ended OKAY/)
  t.ok((await c.readFile('/back/a.bin')).equals(a), 'a.bin as backed up')
  t.ok((await c.readFile('/back/d/b.bin')).equals(b), 'd/b.bin as at the level 0')
  t.strictSame((await c.readdir('/.snapshot')).filter((n) => n !== '.' && n !== '..'), ['keep'], 'only the kept snapshot is left')
  await c.umount()
})
