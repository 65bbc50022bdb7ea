/*
 * A test ObjectStore over a directory (real files, no mock): each key is a
 * file at <dir>/<key>, written to a temporary name then renamed so a reader
 * never sees half an object. Lets the data layer's tests run before, and
 * independently of, the S3 and PostgreSQL stores.
 */
import { mkdir, open, readdir, rename, rm, stat, writeFile } from 'node:fs/promises'
import { dirname, join, relative } from 'node:path'
import { ObjectMissing, ObjectStoreUnavailable, type ObjectInfo, type ObjectStore } from '../../../../vfs/cluster/object-store.ts'

export class DirStore implements ObjectStore {
  readonly dir: string
  puts = 0
  gets = 0
  /** Refuse puts as an unreachable store would (fault injection for tests). */
  refusePuts = false
  private tmp = 0

  constructor(dir: string) {
    this.dir = dir
  }

  private path(key: string): string {
    if (key.length === 0 || key.includes('..') || key.startsWith('/')) throw new RangeError(`bad key ${key}`)
    return join(this.dir, key)
  }

  async put(key: string, data: Buffer): Promise<void> {
    if (this.refusePuts) throw new ObjectStoreUnavailable(`${this.describe()}: refusing put of ${key}`)
    this.puts++
    const p = this.path(key)
    await mkdir(dirname(p), { recursive: true })
    const t = `${p}.tmp${this.tmp++}`
    await writeFile(t, data)
    await rename(t, p)
  }

  async get(key: string, offset: number, length: number): Promise<Buffer> {
    this.gets++
    let fh
    try {
      fh = await open(this.path(key), 'r')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ObjectMissing(key, { cause: err })
      throw err
    }
    try {
      const b = Buffer.alloc(length)
      const { bytesRead } = await fh.read(b, 0, length, offset)
      return b.subarray(0, bytesRead)
    } finally {
      await fh.close()
    }
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (const k of keys) await rm(this.path(k), { force: true })
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const found: ObjectInfo[] = []
    const walk = async (d: string): Promise<void> => {
      let names: string[]
      try {
        names = await readdir(d)
      } catch {
        return
      }
      for (const n of names) {
        const p = join(d, n)
        const s = await stat(p)
        if (s.isDirectory()) await walk(p)
        else if (!n.includes('.tmp')) {
          const key = relative(this.dir, p)
          if (key.startsWith(prefix)) found.push({ key, size: s.size, mtimeMs: s.mtimeMs })
        }
      }
    }
    // Only the directory the prefix names can hold its keys (fsck lists 256 prefixes).
    await walk(join(this.dir, prefix.slice(0, prefix.lastIndexOf('/') + 1)))
    found.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    yield* found
  }

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true })
  }

  describe(): string {
    return `directory ${this.dir}`
  }

  async close(): Promise<void> {}
}
