/*
 * The admin commands, a table of name → handler (as the NFS procedures are): the server builds
 * it at start, and a feature adds its commands with one `register` call each (see
 * registerVolumeCommands; snapshots go the same way). A handler validates its own fields.
 */
import type { AdminRequest } from './protocol.ts'
import { AdminError } from './protocol.ts'
import type { OperationProgress } from '../volume-registry.ts'

export interface AdminContext {
  /** Sends a `{"progress":...}` line to the client, if it is still there. */
  readonly progress: (p: OperationProgress) => void
  /** Aborted when the client disconnects: a wait stops, the work it waits for does not. */
  readonly signal: AbortSignal
}

/** The reply's fields besides `ok`; throwing (AdminError, VolumeError, ...) makes an error reply. */
export type AdminHandler = (req: AdminRequest, ctx: AdminContext) => Promise<Record<string, unknown>>

export class AdminCommands {
  readonly #table = new Map<string, AdminHandler>()

  /** Adds command `name`; a name already taken is a programming error. */
  register(name: string, handler: AdminHandler): void {
    if (this.#table.has(name)) throw new Error(`admin command ${name} registered twice`)
    this.#table.set(name, handler)
  }

  names(): string[] {
    return [...this.#table.keys()].sort()
  }

  get(name: string): AdminHandler {
    const h = this.#table.get(name)
    if (h === undefined) throw new AdminError('ADMIN_UNKNOWN_COMMAND', `unknown command "${name.slice(0, 64)}" (commands: ${this.names().join(', ')})`)
    return h
  }
}

/** Field `name` of a request as a string, or ADMIN_BAD_ARGUMENT. */
export function stringField(req: AdminRequest, name: string): string {
  const v = req[name]
  if (typeof v !== 'string' || v === '') throw new AdminError('ADMIN_BAD_ARGUMENT', `${req.command}: "${name}" must be a non-empty string`)
  return v
}

export function optionalNumber(req: AdminRequest, name: string, max: number): number | undefined {
  const v = req[name]
  if (v === undefined) return undefined
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max) throw new AdminError('ADMIN_BAD_ARGUMENT', `${req.command}: "${name}" must be an integer from 0 to ${max}`)
  return v
}

export function optionalBoolean(req: AdminRequest, name: string): boolean {
  const v = req[name]
  if (v === undefined) return false
  if (typeof v !== 'boolean') throw new AdminError('ADMIN_BAD_ARGUMENT', `${req.command}: "${name}" must be true or false`)
  return v
}
