import t from 'tap'
import { nfsstat3 } from '../../../xdr/generated/nfs3.ts'
import { VfsError } from '../../../vfs/errors.ts'
import type { Logger } from '../../../server/logger.ts'
import { toNfsStat } from '../../../server/nfs3/status.ts'

function recordingLogger(): Logger & { lines: { level: string; obj: unknown }[] } {
  const lines: { level: string; obj: unknown }[] = []
  const at = (level: string) => (obj: unknown) => {
    lines.push({ level, obj })
  }
  const log = { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => log }
  return log
}

t.test('every errno of the table maps as knfsd nfserrno does', async (t) => {
  const log = recordingLogger()
  const cases: [string, number][] = [
    ['EPERM', nfsstat3.NFS3ERR_PERM],
    ['ENOENT', nfsstat3.NFS3ERR_NOENT],
    ['EIO', nfsstat3.NFS3ERR_IO],
    ['ENXIO', nfsstat3.NFS3ERR_NXIO],
    ['EACCES', nfsstat3.NFS3ERR_ACCES],
    ['EEXIST', nfsstat3.NFS3ERR_EXIST],
    ['EXDEV', nfsstat3.NFS3ERR_XDEV],
    ['ENODEV', nfsstat3.NFS3ERR_NODEV],
    ['ENOTDIR', nfsstat3.NFS3ERR_NOTDIR],
    ['EISDIR', nfsstat3.NFS3ERR_ISDIR],
    ['EINVAL', nfsstat3.NFS3ERR_INVAL],
    ['EFBIG', nfsstat3.NFS3ERR_FBIG],
    ['ENOSPC', nfsstat3.NFS3ERR_NOSPC],
    ['EROFS', nfsstat3.NFS3ERR_ROFS],
    ['EMLINK', nfsstat3.NFS3ERR_MLINK],
    ['ENAMETOOLONG', nfsstat3.NFS3ERR_NAMETOOLONG],
    ['ENOTEMPTY', nfsstat3.NFS3ERR_NOTEMPTY],
    ['EDQUOT', nfsstat3.NFS3ERR_DQUOT],
    ['ESTALE', nfsstat3.NFS3ERR_STALE],
    ['EBADF', nfsstat3.NFS3ERR_STALE],
    ['ENOTSUP', nfsstat3.NFS3ERR_NOTSUPP],
    ['EOPNOTSUPP', nfsstat3.NFS3ERR_NOTSUPP],
    ['EAGAIN', nfsstat3.NFS3ERR_JUKEBOX],
    ['ELOOP', nfsstat3.NFS3ERR_INVAL],
    ['EBUSY', nfsstat3.NFS3ERR_ACCES],
  ]
  for (const [code, stat] of cases) {
    const err = Object.assign(new Error(code), { code })
    t.equal(toNfsStat(err, log), stat, code)
  }
  t.equal(toNfsStat(new VfsError('ENOENT'), log), nfsstat3.NFS3ERR_NOENT, 'VfsError')
  t.equal(log.lines.length, 0, 'known codes log nothing')
})

t.test('an unknown errno is IO, logged once per code', async (t) => {
  const log = recordingLogger()
  const err = Object.assign(new Error('x'), { code: 'EZZTEST' })
  t.equal(toNfsStat(err, log), nfsstat3.NFS3ERR_IO)
  t.equal(toNfsStat(err, log), nfsstat3.NFS3ERR_IO)
  t.equal(log.lines.filter((l) => l.level === 'warn').length, 1)
})

t.test('a non-errno exception is a bug: SERVERFAULT, logged with the error', async (t) => {
  const log = recordingLogger()
  t.equal(toNfsStat(new TypeError('boom'), log), nfsstat3.NFS3ERR_SERVERFAULT)
  t.equal(toNfsStat(Object.assign(new Error('node'), { code: 'ERR_INVALID_ARG_TYPE' }), log), nfsstat3.NFS3ERR_SERVERFAULT)
  t.equal(toNfsStat('string thrown', log), nfsstat3.NFS3ERR_SERVERFAULT)
  t.equal(log.lines.filter((l) => l.level === 'error').length, 3)
})
