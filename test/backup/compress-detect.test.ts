/*
 * How a reader of a backup stream tells plain tar from gzip and brotli (backup/compress.ts): gzip
 * by its magic, brotli (no magic) only when its first block inflates to a tar header. A plain
 * stream whose first header is damaged is read as tar, so the error names that header and offset 0
 * (it was taken for brotli and failed as "brotli stream is corrupt" kilobytes on); a brotli backup
 * of an empty tree, shorter than one block, is still known as brotli and restores.
 */
import t from 'tap'
import { backupFormat } from '../../backup/index.ts'
import { BackupFormatError } from '../../backup/types.ts'
import { MemoryVfs } from '../../vfs/memory/memory-vfs.ts'
import { bufferSource, memorySink, snapshotTree, writeFile } from './helpers.ts'

const OWNER = { uid: 0, gid: 0 }

async function backupOf(vfs: MemoryVfs, compress: 'gzip' | 'brotli' | null): Promise<Buffer> {
  const sink = memorySink()
  await backupFormat.writeBackup({ vfs, root: vfs.root(), live: false, name: '/s' }, sink, { level: 0, base: null, onFile: () => undefined, compress })
  return sink.bytes()
}

async function restore(stream: Buffer): Promise<{ target: MemoryVfs; err: unknown }> {
  const target = new MemoryVfs({ rootMode: 0o755 })
  let err: unknown = null
  try {
    await backupFormat.readBackup(bufferSource(stream, 4096), 'tape9', { kind: 'vfs', vfs: target, root: target.root(), owner: OWNER }, { overwrite: false, applyDeletions: false })
  } catch (e) {
    err = e
  }
  return { target, err }
}

t.test('a plain stream with its first header damaged: the error is that header, at offset 0', async (t) => {
  const vfs = new MemoryVfs({ rootMode: 0o755 })
  await writeFile(vfs, 'a1.txt', 'first\n')
  const bad = Buffer.from(await backupOf(vfs, null))
  bad[3] = (bad[3] ?? 0) ^ 0x20
  const { err } = await restore(bad)
  t.type(err, BackupFormatError)
  t.equal((err as BackupFormatError).source, 'tape9')
  t.equal((err as BackupFormatError).offset, 0n, 'the damaged block')
  t.match((err as Error).message, /checksum/)
  t.notMatch((err as Error).message, /brotli/, 'not taken for a brotli stream')
})

t.test('a brotli backup shorter than one block is known as brotli', async (t) => {
  const empty = new MemoryVfs({ rootMode: 0o755 })
  const br = await backupOf(empty, 'brotli')
  t.ok(br.length < 512, `an empty tree in ${br.length} bytes`)
  const { err } = await restore(br)
  t.equal(err, null, 'restores')
  const one = new MemoryVfs({ rootMode: 0o755 })
  await writeFile(one, 'x.txt', 'x\n')
  const small = await backupOf(one, 'brotli')
  t.ok(small.length < 512, `one small file in ${small.length} bytes`)
  const back = await restore(small)
  t.equal(back.err, null)
  t.equal((await snapshotTree(back.target))['x.txt']?.data, (await snapshotTree(one))['x.txt']?.data, 'its file restored')
})
