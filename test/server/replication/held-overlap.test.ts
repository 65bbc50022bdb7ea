/*
 * A replicating primary's non-idempotent call leaves the local log's flush to
 * its reply (vfs/replica/held-changes.ts), so the backend's own commit of the
 * change (the NFS procedure's commitMetadata, server/nfs3/durable.ts) runs
 * beside the log's write, not after it: a reply waits for the slower of two
 * flushes instead of their sum. Shown by order, not by time: the log's write
 * is held until the backend's commit has begun. A primary that waited for the
 * log inside the Vfs call never reaches the commit, and the CREATE is never
 * answered. In both modes.
 */
import t from 'tap'
import { join } from 'node:path'
import { parseExports } from '../../../server/exports/parse.ts'
import { createServer } from '../../../server/index.ts'
import { BACKENDS } from '../../../server/backends.ts'
import type { BackendFactory } from '../../../server/backends.ts'
import { silentLogger } from '../../../server/logger.ts'
import { PrimaryReplication } from '../../../server/replication/primary.ts'
import type { LogIo } from '../../../server/replication/change-log.ts'
import { fdatasync, writeAll } from '../../../server/replication/log-segment.ts'
import { MemoryVfs } from '../../../vfs/memory/memory-vfs.ts'
import type { FileRef } from '../../../vfs/types.ts'
import { Nfs3, S } from '../../helpers/local.ts'

/** A memory backend with a commit of metadata, as a durable backend has; `onCommit` sees each. */
class CommittingMemory extends MemoryVfs {
  readonly #onCommit: () => void
  constructor(onCommit: () => void) {
    super()
    this.#onCommit = onCommit
  }

  commitMetadata(refs: readonly FileRef[]): Promise<void> {
    if (refs.length > 0) this.#onCommit()
    return Promise.resolve()
  }
}

for (const mode of ['sync', 'async'] as const) {
  t.test(`${mode} mode: the backend's commit of a CREATE runs while the change log's write is still under way`, async (t) => {
    const dir = t.testdir({})
    let commits = 0
    let commitBegun: () => void = () => undefined
    const commitSeen = new Promise<void>((resolve) => {
      commitBegun = resolve
    })
    let holding = false
    const io: LogIo = {
      durableWrites: true,
      async write(fd, data, position) {
        // While holding, a write of the log waits for a commit of the backend to begin.
        if (holding) await commitSeen
        await writeAll(fd, data, position)
      },
      sync: (fd) => fdatasync(fd),
    }
    const backends = new Map<string, BackendFactory>(BACKENDS)
    backends.set('memory', () => new CommittingMemory(() => {
      commits++
      if (holding) commitBegun()
    }))
    const repl = await PrimaryReplication.open({ stateDir: join(dir, 'state'), cluster: 'tsnfs', node: 'a', standbys: [], mode, log: silentLogger, logIo: io })
    const server = await createServer({ exports: parseExports('/mem *(rw,insecure,no_root_squash,sync,backend=memory)\n', 'exports'), stateDir: join(dir, 'state'), port: 0, host: '127.0.0.1', locking: false, replication: repl, backends })
    t.teardown(() => server.close().catch(() => undefined))
    const nfs = await Nfs3.connect(t, server.port)
    const root = await nfs.mount('/mem')
    t.equal((await nfs.create(root, 'first')).status, S.OK, 'a CREATE with nothing held')
    t.ok(commits >= 1, 'the export is sync, so the NFS procedure commits the change in the backend')

    holding = true
    const answered = nfs.create(root, 'overlapped').then((r) => r.status)
    let timer: NodeJS.Timeout | undefined
    const within = await Promise.race([answered, new Promise<'none'>((resolve) => { timer = setTimeout(() => { resolve('none') }, 5000) })])
    clearTimeout(timer)
    t.equal(within, S.OK, 'answered: the backend\'s commit began while the log\'s write waited for it, so neither waited for the other')
    holding = false
    commitBegun()
    await answered
  })
}
