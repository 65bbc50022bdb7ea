import t from 'tap'
import type { FileHistoryEntry } from '../../../backup/types.ts'
import { DataEnvError, parseBackupEnv, parseRecoverEnv, resultEnv } from '../../../server/ndmp/data/env.ts'
import type { FhBatch } from '../../../server/ndmp/data/file-history.ts'
import { FH_BATCH_ENTRIES, FhFileType, FileHistoryBatcher } from '../../../server/ndmp/data/file-history.ts'
import { components, splitExportPath } from '../../../server/ndmp/data/paths.ts'
import { DataHaltReason, DataMachine, DataOperation, DataState, NdmpErr } from '../../../server/ndmp/data/state.ts'

t.test('backup env: defaults, flags, levels, excludes, ignored names', async (t) => {
  const env = parseBackupEnv([
    { name: 'FILESYSTEM', value: '/exp' },
    { name: 'HIST', value: 'y' },
    { name: 'TYPE', value: 'tar' },
    { name: 'USER', value: 'root' },
    { name: 'EXCLUDE', value: '*.o, tmp' },
    { name: 'EXCLUDE', value: 'core' },
  ])
  t.strictSame(env, {
    filesystem: '/exp',
    level: 0,
    update: false,
    hist: true,
    histForm: 'node',
    direct: false,
    exclude: ['*.o', 'tmp', 'core'],
    compress: null,
    ignored: ['USER'],
  })
  const l5 = parseBackupEnv([{ name: 'FILESYSTEM', value: '/e' }, { name: 'LEVEL', value: '5' }, { name: 'UPDATE', value: 'Yes' }, { name: 'HIST_TYPE', value: 'file' }])
  t.equal(l5.level, 5)
  t.equal(l5.update, true)
  t.equal(l5.histForm, 'file')
  t.throws(() => parseBackupEnv([]), new DataEnvError('FILESYSTEM is not set: name the export to back up'))
  t.throws(() => parseBackupEnv([{ name: 'FILESYSTEM', value: '/e' }, { name: 'LEVEL', value: '10' }]), { code: 'NDMP_ILLEGAL_ARGS_ERR', message: 'LEVEL=10: expected 0 to 9' })
  t.throws(() => parseBackupEnv([{ name: 'FILESYSTEM', value: '/e' }, { name: 'HIST', value: 'maybe' }]), { message: 'HIST=maybe: expected y or n' })
  t.throws(() => parseBackupEnv([{ name: 'FILESYSTEM', value: 'x'.repeat(5000) }]), { code: 'NDMP_ILLEGAL_ARGS_ERR' })
  t.throws(() => parseBackupEnv(Array.from({ length: 1025 }, () => ({ name: 'A', value: 'b' }))), { code: 'NDMP_ILLEGAL_ARGS_ERR' })
})

t.test('recover env and the env GET_ENV answers', async (t) => {
  t.strictSame(parseRecoverEnv([{ name: 'PREFIX', value: '/exp/r' }, { name: 'FILESYSTEM', value: '/exp' }, { name: 'OVERWRITE', value: 'y' }, { name: 'RULES', value: 'x' }]), {
    prefix: '/exp/r',
    filesystem: '/exp',
    hist: false,
    histForm: 'node',
    direct: false,
    overwrite: true,
    compress: null,
    ignored: ['RULES'],
  })
  // A compressed backup's recover env names it, so DIRECT can be refused before any read.
  t.match(parseRecoverEnv([{ name: 'FILESYSTEM', value: '/exp' }, { name: 'COMPRESS', value: 'gzip' }]), { compress: 'gzip', ignored: [] })
  t.strictSame(resultEnv([{ name: 'HIST', value: 'y' }, { name: 'level', value: '3' }, { name: 'USER', value: 'u' }], { LEVEL: '0', TYPE: 'tar' }), [
    { name: 'HIST', value: 'y' },
    { name: 'USER', value: 'u' },
    { name: 'LEVEL', value: '0' },
    { name: 'TYPE', value: 'tar' },
  ])
})

t.test('state machine: the transitions ndmjob -o test-data walks, and the refused ones', async (t) => {
  const m = new DataMachine()
  const illegal = (fn: () => void): void => {
    t.throws(fn, { name: 'DataStateError', error: NdmpErr.ILLEGAL_STATE_ERR })
  }
  t.equal(m.state, DataState.IDLE)
  illegal(() => { m.checkCanAbort(); })
  illegal(() => { m.stop(); })
  illegal(() => { m.checkCanStart('DATA_START_BACKUP'); })
  illegal(() => { m.checkCanGetEnv(); })
  m.listening({ type: 'tcp', host: '127.0.0.1', port: 1 })
  t.equal(m.state, DataState.LISTEN)
  illegal(() => { m.checkCanConnect('DATA_LISTEN'); })
  illegal(() => { m.stop(); })
  m.checkCanAbort()
  t.equal(m.halt(DataHaltReason.ABORTED), true)
  t.equal(m.status.haltReason, DataHaltReason.ABORTED)
  t.equal(m.halt(DataHaltReason.SUCCESSFUL), false, 'a second halt changes nothing')
  m.stop()
  t.equal(m.state, DataState.IDLE)
  t.equal(m.status.haltReason, DataHaltReason.NA)
  m.connected({ type: 'local' })
  m.checkCanStart('DATA_START_BACKUP')
  m.start(DataOperation.BACKUP)
  t.equal(m.status.operation, DataOperation.BACKUP)
  illegal(() => { m.stop(); })
  illegal(() => { m.checkCanConnect('DATA_CONNECT'); })
  m.progress(1024n, null)
  m.checkCanGetEnv()
  t.equal(m.halt(DataHaltReason.SUCCESSFUL), true)
  t.equal(m.status.bytesProcessed, 1024n)
  t.equal(m.status.estBytesRemain, 0n)
  m.stop()
  t.equal(m.status.bytesProcessed, 0n)
})

function entry(path: string, type: FileHistoryEntry['type'], fileid: bigint, offset: bigint, extra: Partial<FileHistoryEntry> = {}): FileHistoryEntry {
  const ts = { sec: 1_700_000_000, nsec: 5 }
  return { path, type, mode: type === 'dir' ? 0o755 : 0o644, uid: 1, gid: 2, size: type === 'file' ? 10n : 4096n, atime: ts, mtime: ts, ctime: ts, fileid, offset, ...extra }
}

t.test('file history, node form: "." and ".." of the root first, dirs before nodes, hard links once', async (t) => {
  const sent: FhBatch[] = []
  const fh = new FileHistoryBatcher('node', async (b) => {
    sent.push(b)
  })
  fh.add(entry('', 'dir', 2n, 0n))
  fh.add(entry('a', 'dir', 10n, 512n))
  fh.add(entry('a/f', 'file', 11n, 1024n))
  fh.add(entry('a/g', 'file', 11n, 2048n, { hardLinkOf: 'a/f' }))
  fh.flush()
  await fh.drain()
  t.equal(sent.length, 2)
  t.strictSame(sent[0], {
    kind: 'dir',
    dirs: [
      { name: '.', node: 2n, parent: 2n },
      { name: '..', node: 2n, parent: 2n },
      { name: 'a', node: 10n, parent: 2n },
      { name: 'f', node: 11n, parent: 10n },
      { name: 'g', node: 11n, parent: 10n },
    ],
  })
  t.equal(sent[1]?.kind, 'node')
  if (sent[1]?.kind !== 'node') return
  t.strictSame(sent[1].nodes.map((n) => [n.node, n.fhInfo, n.stat.ftype]), [[2n, 0n, FhFileType.DIR], [10n, 512n, FhFileType.DIR], [11n, 1024n, FhFileType.REG]])
  t.strictSame(sent[1].nodes[2]?.stat, { ftype: FhFileType.REG, mtime: 1_700_000_000, atime: 1_700_000_000, ctime: 1_700_000_000, owner: 1, group: 2, fattr: 0o644, size: 10n, links: 1 })
})

t.test('file history, file form, batched by count; a send failure reaches drain()', async (t) => {
  const sent: FhBatch[] = []
  const fh = new FileHistoryBatcher('file', async (b) => {
    sent.push(b)
  })
  fh.add(entry('', 'dir', 2n, 0n))
  for (let i = 0; i < FH_BATCH_ENTRIES + 10; i++) fh.add(entry(`f${i}`, 'file', BigInt(100 + i), BigInt(512 * (i + 1))))
  fh.flush()
  await fh.drain()
  t.strictSame(sent.map((b) => (b.kind === 'file' ? b.files.length : -1)), [FH_BATCH_ENTRIES, 11])
  t.equal(sent[0]?.kind === 'file' ? sent[0].files[0]?.name : '', '/')
  t.equal(sent[0]?.kind === 'file' ? sent[0].files[1]?.name : '', '/f0')
  t.equal(fh.entries, FH_BATCH_ENTRIES + 11)

  const bad = new FileHistoryBatcher('file', async () => {
    throw Object.assign(new Error('socket closed'), { code: 'EPIPE' })
  })
  bad.add(entry('', 'dir', 2n, 0n))
  bad.flush()
  await t.rejects(bad.drain(), { code: 'EPIPE' })
})

t.test('paths: whole components, longest export wins, ".." refused', async (t) => {
  const exps = [{ path: '/data' }, { path: '/data/sub' }, { path: '/' + 'x' }]
  t.strictSame(components('/a//b/./c/'), ['a', 'b', 'c'])
  t.throws(() => components('/a/../b'), { code: 'NDMP_ILLEGAL_ARGS_ERR' })
  t.strictSame(splitExportPath(exps, '/data/sub/x/y'), { target: { path: '/data/sub' }, rest: ['x', 'y'] })
  t.strictSame(splitExportPath(exps, '/data/'), { target: { path: '/data' }, rest: [] })
  t.equal(splitExportPath(exps, '/database'), null)
  t.equal(splitExportPath(exps, '/nope'), null)
})
