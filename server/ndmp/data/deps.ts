/*
 * The DATA service's backup machinery as the server runs it: backup/'s format with the level store
 * under `<stateDir>/ndmp/levels` (dump's dumpdates: UPDATE=y records there, LEVEL N finds its
 * base there), one store per state directory for the life of the process.
 */
import { join } from 'node:path'
import { createBackupFormat, LevelStore } from '../../../backup/index.ts'
import type { BackupFormat } from '../../../backup/types.ts'
import type { LevelKeeper } from './backup-run.ts'
import type { DataDeps } from './data-session.ts'
import { listStream } from './list-stream.ts'

type Backend = { format: BackupFormat; levels: LevelKeeper }

export function serverDataDeps(): DataDeps {
  const opened = new Map<string, Promise<Backend>>()
  return {
    backend(stateDir: string): Promise<Backend> {
      let b = opened.get(stateDir)
      if (b === undefined) {
        b = LevelStore.open(join(stateDir, 'ndmp', 'levels')).then((store) => ({
          format: createBackupFormat({ levels: store }),
          levels: {
            base: (fs: string, level: number) => Promise.resolve(store.base(fs, level)),
            record: (fs, summary) => store.record(fs, summary),
          },
        }))
        // A failed open (unwritable state directory) is retried by the next backup.
        b.catch(() => opened.delete(stateDir))
        opened.set(stateDir, b)
      }
      return b
    },
    list: listStream,
  }
}
