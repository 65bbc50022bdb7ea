import type { BlockDevice } from '../engine/blockdev/block-device.ts'
import { redundantLayers } from './factory.ts'
import { Raid5Device } from './raid5.ts'

/** One redundant layer's scrub result, in the words `tsnfs volume scrub` prints. */
export interface LayerScrub {
  readonly layer: 'mirror' | 'raid5'
  /** Mismatched stripes (RAID-5) or ranges (mirror). */
  readonly mismatches: number
  readonly repaired: number
  readonly line: string
}

/**
 * Scrubs every mirror and RAID-5 layer of a volume, outermost first (offline and through the
 * server alike). Progress is over all layers together: bytes of each layer checked, summed.
 */
export async function scrubLayers(device: BlockDevice, opts: { repair: boolean; onProgress?: (done: number, total: number) => void }): Promise<LayerScrub[]> {
  const layers = redundantLayers(device)
  const total = layers.reduce((sum, l) => sum + l.size, 0)
  const out: LayerScrub[] = []
  let before = 0
  for (const layer of layers) {
    const onProgress = (done: number): void => opts.onProgress?.(before + done, total)
    if (layer instanceof Raid5Device) {
      const r = await layer.scrub({ repair: opts.repair, onProgress })
      out.push({ layer: 'raid5', mismatches: r.mismatches, repaired: r.repaired, line: `raid5: ${r.stripes} stripes, ${r.mismatches} parity mismatches, ${r.repaired} repaired` })
    } else {
      const r = await layer.scrub({ repair: opts.repair, onProgress })
      out.push({ layer: 'mirror', mismatches: r.mismatchRanges, repaired: r.repaired, line: `mirror: ${r.bytes} bytes, ${r.mismatchRanges} mismatched ranges (${r.mismatchBytes} bytes), ${r.repaired} repaired` })
    }
    before += layer.size
  }
  return out
}
