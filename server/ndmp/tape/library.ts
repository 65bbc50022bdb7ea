/*
 * The tape devices an NDMP server offers (`--ndmp-tape PATH`, repeatable):
 *   - PATH a file: one drive with its cartridge, device name = PATH;
 *   - PATH a directory: a tape library. Each cartridge is LABEL.tape in it, its label also in
 *     its header; device name = PATH/LABEL (a DMA changes tapes by closing one device and
 *     opening the next label: no robot needed). A full tape reports EOM to the mover, which
 *     pauses; the DMA asks the library for the next writable label (nextWritable()).
 * Only these names open: a DMA cannot make the server open any other file.
 */
import { open, readdir, stat, writeFile } from 'node:fs/promises'
import { basename, join, resolve } from 'node:path'
import { HEADER_SIZE, checkLabel, decodeHeader, encodeHeader } from './format.ts'
import { TapeDrive } from './drive.ts'
import type { TapeDriveOptions } from './drive.ts'

export const TAPE_SUFFIX = '.tape'

export interface TapeInfo {
  label: string
  path: string
  /** 0: unlimited. */
  capacity: number
  earlyWarning: number
  /** Bytes written after the header (frames included). */
  used: number
  /** Into the early-warning zone: a DMA starts the next backup on another tape. */
  full: boolean
  /** The header does not decode: the message names the file and offset. */
  error?: string
}

export class TapeLibrary {
  readonly dir: string
  constructor(dir: string) {
    this.dir = resolve(dir)
  }

  pathOf(label: string): string {
    checkLabel(label)
    return join(this.dir, label + TAPE_SUFFIX)
  }

  /** Every cartridge, sorted by label. */
  async list(): Promise<TapeInfo[]> {
    const names = (await readdir(this.dir)).filter((n) => n.endsWith(TAPE_SUFFIX)).sort()
    const out: TapeInfo[] = []
    for (const name of names) out.push(await describeTape(join(this.dir, name), name.slice(0, -TAPE_SUFFIX.length)))
    return out
  }

  /** A new blank cartridge with its label in the header; an existing label is refused. */
  async create(label: string, options: { capacity?: number; earlyWarning?: number } = {}): Promise<TapeInfo> {
    const path = this.pathOf(label)
    const capacity = options.capacity ?? 0
    const earlyWarning = options.earlyWarning ?? (capacity > 0 ? Math.min(capacity, Math.max(64 * 1024, Math.floor(capacity / 50))) : 0)
    await writeFile(path, encodeHeader({ capacity, earlyWarning, label }), { flag: 'wx' })
    return { label, path, capacity, earlyWarning, used: 0, full: false }
  }

  /** The first cartridge (by label) after `after` that is not full, or null: the DMA's next tape. */
  async nextWritable(after?: string): Promise<TapeInfo | null> {
    for (const t of await this.list()) {
      if (after !== undefined && t.label <= after) continue
      if (!t.full && t.error === undefined) return t
    }
    return null
  }
}

export async function describeTape(path: string, fallbackLabel = basename(path)): Promise<TapeInfo> {
  const size = (await stat(path)).size
  if (size === 0) return { label: fallbackLabel, path, capacity: 0, earlyWarning: 0, used: 0, full: false }
  const fh = await open(path, 'r')
  try {
    const b = Buffer.alloc(HEADER_SIZE)
    const { bytesRead } = await fh.read(b, 0, HEADER_SIZE, 0)
    const h = decodeHeader(path, b.subarray(0, bytesRead))
    const used = size - HEADER_SIZE
    return { label: h.label === '' ? fallbackLabel : h.label, path, capacity: h.capacity, earlyWarning: h.earlyWarning, used, full: h.capacity > 0 && used >= h.capacity - h.earlyWarning }
  } catch (err) {
    return { label: fallbackLabel, path, capacity: 0, earlyWarning: 0, used: size, full: true, error: (err as Error).message }
  } finally {
    await fh.close()
  }
}

/** The configured devices and their drives (one TapeDrive per cartridge, shared by all sessions). */
export class TapeDevices {
  private readonly files = new Set<string>()
  private readonly libraries: TapeLibrary[] = []
  private readonly drives = new Map<string, TapeDrive>()
  private readonly options: TapeDriveOptions

  /** `paths`: already checked to exist (see fromPaths()). */
  constructor(files: readonly string[], libraries: readonly string[], options: TapeDriveOptions = {}) {
    for (const f of files) this.files.add(resolve(f))
    for (const d of libraries) this.libraries.push(new TapeLibrary(d))
    this.options = options
  }

  /** Sorts each PATH into a drive file or a library directory; a missing path fails with its name. */
  static async fromPaths(paths: readonly string[], options: TapeDriveOptions = {}): Promise<TapeDevices> {
    const files: string[] = []
    const dirs: string[] = []
    for (const p of paths) {
      const st = await stat(p).catch(() => null)
      if (st === null) throw new Error(`--ndmp-tape ${p}: no such file or directory (create an empty file for a blank tape)`)
      if (st.isDirectory()) dirs.push(p)
      else if (st.isFile()) files.push(p)
      else throw new Error(`--ndmp-tape ${p}: not a file or a directory`)
    }
    return new TapeDevices(files, dirs, options)
  }

  get libraryList(): readonly TapeLibrary[] {
    return this.libraries
  }

  /** Device names for CONFIG_GET_TAPE_INFO: each drive file, each cartridge of each library. */
  async names(): Promise<string[]> {
    const out = [...this.files]
    for (const lib of this.libraries) {
      for (const t of await lib.list().catch(() => [])) out.push(join(lib.dir, t.label))
    }
    return out
  }

  /** The drive a TAPE_OPEN device name means, or null (NO_DEVICE_ERR). */
  resolve(name: string): TapeDrive | null {
    const full = resolve(name)
    let path: string | null = null
    if (this.files.has(full)) path = full
    for (const lib of this.libraries) {
      if (path !== null) break
      const label = full.startsWith(lib.dir + '/') ? full.slice(lib.dir.length + 1).replace(/\.tape$/, '') : null
      if (label === null || label.includes('/')) continue
      try {
        path = lib.pathOf(label)
      } catch {
        return null
      }
    }
    if (path === null) return null
    let drive = this.drives.get(path)
    if (drive === undefined) {
      drive = new TapeDrive(path, this.options)
      this.drives.set(path, drive)
    }
    return drive
  }

  /** A session ended: every drive it held open is closed. */
  async releaseAll(owner: object): Promise<void> {
    for (const d of this.drives.values()) await d.release(owner)
  }
}
