/*
 * The level store: dump's dumpdates in a state directory. For each (filesystem, level) the newest
 * backup's start time and listing id; the listings themselves (dir path -> entries) in one file
 * each, so a later level sees new names, renames and deletions. Level N's base is the newest
 * backup of any lower level (dump(8): "all files modified since the last dump of a lower level").
 */
import fs from 'node:fs/promises'
import path from 'node:path'
import type { FileType, Timespec } from '../vfs/types.ts'
import type { BackupSummary, DirListing, LevelBase } from './types.ts'

interface DumpDate {
  startedAt: Timespec
  listingId: string
}

type DumpDates = Record<string, Record<string, DumpDate>>

/** Listing ids are our UUIDs; anything else is refused before it becomes a file name. */
const ID_RE = /^[0-9A-Za-z-]{1,64}$/

function later(a: Timespec, b: Timespec): boolean {
  return a.sec > b.sec || (a.sec === b.sec && a.nsec > b.nsec)
}

async function writeAtomic(file: string, data: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`
  await fs.writeFile(tmp, data)
  await fs.rename(tmp, file)
}

export class LevelStore {
  readonly #dir: string
  #dates: DumpDates

  private constructor(dir: string, dates: DumpDates) {
    this.#dir = dir
    this.#dates = dates
  }

  static async open(dir: string): Promise<LevelStore> {
    await fs.mkdir(path.join(dir, 'listings'), { recursive: true })
    let dates: DumpDates = {}
    try {
      dates = JSON.parse(await fs.readFile(path.join(dir, 'dumpdates.json'), 'utf8')) as DumpDates
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw err
    }
    return new LevelStore(dir, dates)
  }

  /** The base of a level-`level` backup of `filesystem`: the newest backup of a lower level, or null. */
  base(filesystem: string, level: number): LevelBase | null {
    let best: LevelBase | null = null
    for (const [lv, d] of Object.entries(this.#dates[filesystem] ?? {})) {
      const n = Number(lv)
      if (n >= level) continue
      if (best === null || later(d.startedAt, best.startedAt)) best = { level: n, startedAt: d.startedAt, listingId: d.listingId }
    }
    return best
  }

  /** Records a finished backup (dump's -u): its listing, and it as the newest of its level. */
  async record(filesystem: string, summary: BackupSummary): Promise<void> {
    await this.saveListing(summary.listingId, summary.listing)
    const fsDates = (this.#dates[filesystem] ??= {})
    fsDates[String(summary.level)] = { startedAt: summary.startedAt, listingId: summary.listingId }
    await writeAtomic(path.join(this.#dir, 'dumpdates.json'), JSON.stringify(this.#dates, null, 1))
  }

  async saveListing(id: string, listing: DirListing): Promise<void> {
    if (!ID_RE.test(id)) throw new Error(`level store: bad listing id '${id}'`)
    const rows: Array<[string, Array<[string, string, string]>]> = []
    for (const [dir, entries] of listing) rows.push([dir, entries.map((e) => [e.name, e.fileid.toString(), e.type])])
    await writeAtomic(path.join(this.#dir, 'listings', `${id}.json`), JSON.stringify(rows))
  }

  /** A recorded listing, or null when it is unknown. */
  async listing(id: string): Promise<DirListing | null> {
    if (!ID_RE.test(id)) return null
    let text: string
    try {
      text = await fs.readFile(path.join(this.#dir, 'listings', `${id}.json`), 'utf8')
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return null
      throw err
    }
    const rows = JSON.parse(text) as Array<[string, Array<[string, string, string]>]>
    const out: DirListing = new Map()
    for (const [dir, entries] of rows) {
      out.set(
        dir,
        entries.map(([name, fileid, type]) => ({ name, fileid: BigInt(fileid), type: type as FileType })),
      )
    }
    return out
  }
}
