/*
 * The TAPE service's state: the server-wide devices (one TapeDrive per cartridge, so one opener
 * at a time across sessions) and, per session, the drive that session has open. The MOVER finds
 * its tape through tapeOf(session).
 */
import { statSync } from 'node:fs'
import type { NdmpContext, NdmpSession } from '../service-types.ts'
import type { TapeDrive } from './drive.ts'
import { TapeDevices } from './library.ts'

const devices = new WeakMap<NdmpContext, TapeDevices>()

/** The devices of a server (its `--ndmp-tape` paths: files are drives, directories libraries). */
export function devicesOf(context: NdmpContext): TapeDevices {
  let d = devices.get(context)
  if (d === undefined) {
    const files: string[] = []
    const dirs: string[] = []
    for (const t of context.tapes) {
      const isDir = statSync(t.path, { throwIfNoEntry: false })?.isDirectory() === true
      ;(isDir ? dirs : files).push(t.path)
    }
    d = new TapeDevices(files, dirs)
    devices.set(context, d)
  }
  return d
}

export interface SessionTape {
  drive: TapeDrive | null
}

const KEY = Symbol('ndmp.tape')

/** The drive this session has open (TAPE_OPEN .. TAPE_CLOSE); closed when the session ends. */
export function tapeOf(session: NdmpSession): SessionTape {
  return session.state(KEY, () => {
    const st: SessionTape = { drive: null }
    session.onClose(async () => {
      const d = st.drive
      st.drive = null
      await d?.release(session)
    })
    return st
  })
}
