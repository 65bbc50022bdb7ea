/*
 * Device-qualified file ids, for exports that cross into file systems
 * mounted below the root (crossmnt). Inode numbers repeat across devices,
 * and the server reports one fsid per export, so a fileid (and a FileRef id)
 * must say which device it is on:
 *
 *   root device:     id = ino                                (bit 63 clear)
 *   another device:  id = 1 << 63 | k << 47 | ino             (k 1..65535, ino < 2^47)
 *
 * Ids of the root device are the raw inode numbers, as before crossmnt
 * existed, so handles and index files made without it stay valid. `k` is a
 * small per-export number for a st_dev, from a table kept in the state
 * directory (`devices`), written durably (tmp, fsync, rename, fsync dir)
 * the moment a new st_dev is first seen, before any id with that k is
 * handed out. A st_dev never seen before gets a new k, so a file system that
 * comes back under another device number (a tmpfs remounted, a reboot) does
 * not take over the old handles: they answer STALE.
 */
import fs from 'node:fs'
import path from 'node:path'

const CROSSED = 1n << 63n
const K_SHIFT = 47n
/** Inode numbers of crossed devices must fit below the device number. */
export const MAX_CROSSED_INO = (1n << K_SHIFT) - 1n
export const MAX_DEVICES = 0xffff
const INO_MASK = MAX_CROSSED_INO
const HEADER = 'tsnfs-devices 1'

/** The id of inode `ino` on device number `k` (0: the root device), or null when it cannot have one. */
export function qualify(k: number, ino: bigint): bigint | null {
  if (k === 0) return ino < CROSSED ? ino : null
  if (k < 1 || k > MAX_DEVICES || ino < 0n || ino > MAX_CROSSED_INO) return null
  return CROSSED | (BigInt(k) << K_SHIFT) | ino
}

/** The device number and inode of an id (k 0: the root device). */
export function splitId(id: bigint): { k: number; ino: bigint } {
  if ((id & CROSSED) === 0n) return { k: 0, ino: id }
  return { k: Number((id >> K_SHIFT) & BigInt(MAX_DEVICES)), ino: id & INO_MASK }
}

export interface DeviceTableOptions {
  /** Most devices the table holds (default and at most 65535; smaller for tests). */
  max?: number
}

/** The persistent st_dev <-> k table of one export. */
export class DeviceTable {
  readonly #file: string
  readonly #max: number
  readonly #byDev = new Map<bigint, number>()
  readonly #byK = new Map<number, bigint>()

  /** Loads the table synchronously (backends are made synchronously); a damaged table refuses to load. */
  constructor(stateDir: string, o: DeviceTableOptions = {}) {
    fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 })
    this.#file = path.join(stateDir, 'devices')
    this.#max = Math.min(o.max ?? MAX_DEVICES, MAX_DEVICES)
    let text: string
    try {
      text = fs.readFileSync(this.#file, 'latin1')
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ENOENT') return
      throw err
    }
    this.#parse(text)
  }

  get size(): number {
    return this.#byDev.size
  }

  /** The k of a device already in the table. */
  find(dev: bigint): number | undefined {
    return this.#byDev.get(dev)
  }

  /** The st_dev of device number k. */
  devOf(k: number): bigint | undefined {
    return this.#byK.get(k)
  }

  /**
   * The k of a device, adding it (durably, before returning) when new; null when the table is
   * full. Synchronous on purpose: a new device is rare, and two requests seeing it at once must
   * not both add it.
   */
  numberOf(dev: bigint): number | null {
    const known = this.#byDev.get(dev)
    if (known !== undefined) return known
    if (this.#byDev.size >= this.#max) return null
    const k = this.#byDev.size + 1
    this.#write([...this.#byK, [k, dev]])
    this.#byDev.set(dev, k)
    this.#byK.set(k, dev)
    return k
  }

  #parse(text: string): void {
    const lines = text.split('\n')
    if (lines[0] !== HEADER || lines.at(-1) !== '') throw new Error(`${this.#file}: not a device table`)
    for (const line of lines.slice(1, -1)) {
      const m = /^(\d{1,5}) (\d{1,20})$/.exec(line)
      const k = Number(m?.[1] ?? NaN)
      const dev = BigInt(m?.[2] ?? 0)
      // Numbers are dense from 1: anything else is damage, and guessing could give old handles to another device.
      if (m === null || k !== this.#byK.size + 1 || k > MAX_DEVICES || this.#byDev.has(dev)) throw new Error(`${this.#file}: bad line "${line}"`)
      this.#byDev.set(dev, k)
      this.#byK.set(k, dev)
    }
  }

  #write(rows: [number, bigint][]): void {
    const body = `${HEADER}\n${rows.map(([k, dev]) => `${k} ${dev}\n`).join('')}`
    const tmp = `${this.#file}.tmp`
    const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC, 0o600)
    try {
      fs.writeFileSync(fd, body, 'latin1')
      fs.fsyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
    fs.renameSync(tmp, this.#file)
    const dir = fs.openSync(path.dirname(this.#file), fs.constants.O_RDONLY | fs.constants.O_DIRECTORY)
    try {
      fs.fsyncSync(dir)
    } finally {
      fs.closeSync(dir)
    }
  }
}
