/*
 * Cached replies that ride in the APPEND of their change (REPL_APPEND_DRC,
 * xdr/spec/replication.x). A sync-mode reply waits until every standby has
 * its change and the reply itself (drc-ship.ts). The reply is known before the
 * sender builds the APPEND of its change (the layer no longer waits for the
 * log's flush first: vfs/replica/held-changes.ts), so instead of a
 * REPL_DRC_HELD beside the APPEND (a second message, a second wake-up of the
 * standby and of the primary for its answer) the shipper hands the entry to
 * the sender, which parks it here until it builds the batch holding its
 * change. An entry the sender cannot carry (its change already went, the
 * standby is older, the session ended, a resync) goes back to the shipper,
 * which sends it by REPL_DRC_HELD as before.
 */
import { REPL_MAXDRC } from '../../xdr/generated/replication.ts'
import type { repl_drc_held_entry } from '../../xdr/generated/replication.ts'

/** A reply waiting for the standby to hold it; `done` releases the wait (null once called). */
export interface CarriedReply {
  exportId: number
  seq: bigint
  key: string
  reply: Buffer
  /** Resolves once the sync standbys acknowledged the change (for REPL_DRC to an older standby). */
  replicated?: Promise<void> | undefined
  done: (() => void) | null
}

/** Where entries go when carried (answered) or when they cannot be (the shipper, drc-ship.ts). */
export interface CarrierHome {
  /** The APPEND carrying them was answered: `stored`, the standby holds them, usable; else they go again by REPL_DRC_HELD. */
  carried(entries: readonly CarriedReply[], stored: boolean): void
  /** Not carried after all: the shipper sends them by REPL_DRC_HELD. */
  returned(entries: readonly CarriedReply[]): void
}

/** Room for replies in one APPEND: within what the standby's record cap leaves over a full batch (standby-program.ts). */
export const CARRIED_BYTES = 32 * 1024

/** The XDR size of an entry (repl_drc_held_entry: export id, seq, key and reply each padded to 4). */
function entryBytes(e: CarriedReply): number {
  return 4 + 8 + 4 + Math.ceil(Buffer.byteLength(e.key) / 4) * 4 + 4 + Math.ceil(e.reply.length / 4) * 4
}

export function toWire(e: CarriedReply): repl_drc_held_entry {
  return { export_id: e.exportId, seq: e.seq, key: Buffer.from(e.key), reply: e.reply }
}

/** Per export, the entries waiting for the APPEND of their change. */
export class ParkedReplies {
  private readonly byExport = new Map<number, CarriedReply[]>()

  get size(): number {
    let n = 0
    for (const l of this.byExport.values()) n += l.length
    return n
  }

  park(e: CarriedReply): void {
    const l = this.byExport.get(e.exportId)
    if (l === undefined) this.byExport.set(e.exportId, [e])
    else l.push(e)
  }

  /**
   * The entries of changes first..last (the batch about to go), within the caps (REPL_MAXDRC
   * entries, CARRIED_BYTES); those of a change up to `last` that do not fit, or of one before
   * `first` (already gone), go home. Later ones stay parked for the next batch.
   */
  claim(exportId: number, first: bigint, last: bigint, home: CarrierHome): CarriedReply[] {
    const l = this.byExport.get(exportId)
    if (l === undefined || l.length === 0) return []
    const take: CarriedReply[] = []
    const back: CarriedReply[] = []
    const keep: CarriedReply[] = []
    let bytes = 0
    for (const e of l) {
      if (e.seq > last) keep.push(e)
      else if (e.seq < first || take.length >= REPL_MAXDRC || bytes + entryBytes(e) > CARRIED_BYTES) back.push(e)
      else {
        take.push(e)
        bytes += entryBytes(e)
      }
    }
    this.byExport.set(exportId, keep)
    if (back.length > 0) home.returned(back)
    return take
  }

  /** Every entry of the export (or of all) home: its changes will not be shipped by this session. */
  release(home: CarrierHome, exportId?: number): void {
    for (const [id, l] of this.byExport) {
      if (exportId !== undefined && id !== exportId) continue
      this.byExport.delete(id)
      if (l.length > 0) home.returned(l)
    }
  }
}
