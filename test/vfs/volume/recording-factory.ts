import type { BlockDevice } from '../../../vfs/engine/blockdev/block-device.ts'
import { checkRange } from '../../../vfs/engine/blockdev/block-device.ts'
import type { LayerFactory } from '../../../vfs/volume/layer-tree.ts'
import type { RedundantOptions } from '../../../vfs/volume/layer.ts'
import { MissingDevice } from '../../../vfs/volume/missing-device.ts'

/**
 * Layers for assembly tests: they record what they were built from, so a test can print the tree
 * assembleVolume asked for. Partition and span do real I/O (offset and concatenation); the
 * others only have the size the real layers would have and refuse I/O, since these tests are
 * about which disk went where, not about striping.
 */
export class TestLayer implements BlockDevice {
  readonly kind: string
  readonly members: readonly BlockDevice[]
  readonly size: number
  readonly sectorSize = 512
  readonly readOnly = false
  readonly offset: number
  readonly unit: number | undefined
  readonly redundant: RedundantOptions | undefined
  closed = false

  constructor(kind: string, members: BlockDevice[], size: number, extra: { offset?: number; unit?: number; redundant?: RedundantOptions } = {}) {
    this.kind = kind
    this.members = members
    this.size = size
    this.offset = extra.offset ?? 0
    this.unit = extra.unit
    this.redundant = extra.redundant
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const out = Buffer.alloc(length)
    await this.readInto(offset, out)
    return out
  }

  async readInto(offset: number, target: Uint8Array): Promise<void> {
    checkRange(this.size, offset, target.length, 'read')
    for (const piece of this.#pieces(offset, target.length)) await piece.dev.readInto(piece.at, target.subarray(piece.from, piece.from + piece.length))
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    checkRange(this.size, offset, data.length, 'write')
    for (const piece of this.#pieces(offset, data.length)) await piece.dev.write(piece.at, data.subarray(piece.from, piece.from + piece.length))
  }

  async flush(): Promise<void> {
    for (const m of this.members) await m.flush()
  }

  async close(): Promise<void> {
    this.closed = true
  }

  #pieces(offset: number, length: number): { dev: BlockDevice; at: number; from: number; length: number }[] {
    const [first] = this.members
    if (this.kind === 'partition' && first !== undefined) return [{ dev: first, at: this.offset + offset, from: 0, length }]
    if (this.kind !== 'span') throw new Error(`test ${this.kind} does no I/O`)
    const out = []
    let base = 0
    for (const dev of this.members) {
      const from = Math.max(offset, base)
      const to = Math.min(offset + length, base + dev.size)
      if (from < to) out.push({ dev, at: from - base, from: from - offset, length: to - from })
      base += dev.size
    }
    return out
  }
}

const floorTo = (n: number, unit: number): number => Math.floor(n / unit) * unit
const min = (devs: BlockDevice[]): number => Math.min(...devs.map((d) => d.size))

export function testFactory(): LayerFactory & { built: TestLayer[] } {
  const built: TestLayer[] = []
  const keep = (l: TestLayer): TestLayer => {
    built.push(l)
    return l
  }
  return {
    built,
    partition: (inner, offset, size) => keep(new TestLayer('partition', [inner], size, { offset })),
    span: (members) => keep(new TestLayer('span', members, members.reduce((s, m) => s + m.size, 0))),
    stripe: (members, { unit }) => keep(new TestLayer('stripe', members, members.length * floorTo(min(members), unit), { unit })),
    mirror: (legs, redundant) => keep(new TestLayer('mirror', legs, min(legs), { redundant })),
    raid5: (members, { unit, ...redundant }) => keep(new TestLayer('raid5', members, (members.length - 1) * floorTo(min(members), unit), { unit, redundant })),
  }
}

/**
 * The tree as text: a disk's data area shows as the label written at its start (so renamed and
 * reordered files still show who they are), a stand-in as `missing(size)`.
 */
export async function describeTree(dev: BlockDevice): Promise<string> {
  if (dev instanceof MissingDevice) return `missing(${dev.size})`
  if (!(dev instanceof TestLayer)) return 'raw'
  const [inner] = dev.members
  if (dev.kind === 'partition' && inner !== undefined && !(inner instanceof TestLayer) && !(inner instanceof MissingDevice)) {
    const label = (await dev.read(0, 16)).toString('latin1').replace(/\0+$/, '')
    return `${label}@${dev.offset}+${dev.size}`
  }
  const parts: string[] = []
  for (const m of dev.members) parts.push(await describeTree(m))
  const unit = dev.unit === undefined ? '' : `/${dev.unit}`
  return `${dev.kind}${unit}(${parts.join(', ')})`
}
