/*
 * What the htree tests share: a ReadAt that counts reads (lookups must cost
 * O(depth) blocks, not O(blocks)), random file names with bytes >= 0x80, and
 * the kernel's own READDIR positions (d_off, via perl's telldir).
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { FormatError } from '../../../vfs/engine/format/errors.ts'
import type { ReadAt } from '../../../vfs/engine/reader/read-at.ts'

export class CountingReadAt implements ReadAt {
  reads = 0
  readonly inner: ReadAt
  constructor(inner: ReadAt) {
    this.inner = inner
  }

  get size(): number {
    return this.inner.size
  }

  read(offset: number, length: number): Promise<Buffer> {
    this.reads++
    return this.inner.read(offset, length)
  }
}

/** n distinct names of 1..60 bytes (a few of 255), any byte but NUL and '/', never "." or "..". */
export function randomNames(rand: (n: number) => Buffer, n: number, prefix = ''): Buffer[] {
  const seen = new Set<string>()
  const out: Buffer[] = []
  while (out.length < n) {
    const r = rand(2)
    const len = (r[0] ?? 0) < 3 ? 255 - prefix.length : 1 + ((r[1] ?? 0) % 40)
    const b = rand(len)
    for (let i = 0; i < len; i++) if (b[i] === 0 || b[i] === 0x2f) b[i] = 0x5f
    const name = Buffer.concat([Buffer.from(prefix), b])
    const key = name.toString('hex')
    if (seen.has(key) || key === '2e' || key === '2e2e') continue
    seen.add(key)
    out.push(name)
  }
  return out
}

/** The kernel's listing of dir: each name (hex) with its d_off (the position after it), in readdir order. */
export function kernelDoffs(dir: string): Array<{ name: string; doff: bigint }> {
  const r = spawnSync('perl', ['-e', 'opendir(D, $ARGV[0]) or die "$!"; while (defined(my $n = readdir D)) { printf "%s %s\\n", telldir(D), unpack("H*", $n) }', dir], {
    encoding: 'utf8',
    maxBuffer: 256 << 20,
  })
  if (r.status !== 0) throw new Error(`perl readdir ${dir}: ${r.stderr}`)
  return r.stdout
    .trim()
    .split('\n')
    .map((l) => {
      const [doff, name] = l.split(' ')
      return { name: name ?? '', doff: BigInt(doff ?? '0') }
    })
}

/** An image file read with readSync: the thread-pool round trip of each async read would dominate tests of 100,000 lookups. */
export class SyncFileReadAt implements ReadAt {
  readonly size: number
  readonly #fd: number
  constructor(file: string) {
    this.#fd = fs.openSync(file, 'r')
    this.size = fs.fstatSync(this.#fd).size
  }

  read(offset: number, length: number): Promise<Buffer> {
    if (offset < 0 || length < 0 || offset + length > this.size) return Promise.reject(new FormatError('EXT4_TRUNCATED', `read of ${length} at ${offset} past the end (${this.size})`))
    const out = Buffer.alloc(length)
    fs.readSync(this.#fd, out, 0, length, offset)
    return Promise.resolve(out)
  }

  close(): void {
    fs.closeSync(this.#fd)
  }
}
