/* Helpers for the local backend tests: fresh export and state directories under one temp dir. */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { LocalVfs } from '../../vfs/local/local-vfs.ts'
import type { LocalVfsOptions } from '../../vfs/local/local-vfs.ts'

export interface LocalDirs {
  root: string
  stateDir: string
}

let base: string | null = null
let seq = 0

/** A new export root and state dir; everything is removed when the process exits. */
export function localDirs(): LocalDirs {
  if (base === null) {
    const b = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-local-'))
    base = b
    process.on('exit', () => {
      fs.rmSync(b, { recursive: true, force: true })
    })
  }
  const n = seq++
  const root = path.join(base, `export-${n}`)
  const stateDir = path.join(base, `state-${n}`)
  fs.mkdirSync(root)
  return { root, stateDir }
}

export function openLocal(dirs: LocalDirs, extra: Partial<LocalVfsOptions> = {}): LocalVfs {
  return new LocalVfs({ ...dirs, ...extra })
}

/** Open fds of this process (for cache bounds). */
export function openFdCount(): number {
  return fs.readdirSync('/proc/self/fd').length
}
