/*
 * tsnfs fsck IMAGE --repair: open the image read-write under the engine's
 * lock (so it is not repaired while served), run repairImage, and say what it
 * did: the journal replay, each repair made, each problem left and why, then
 * what the check after the repairs still finds. Exit as e2fsck -fy: 0 clean,
 * 1 errors corrected, 4 errors left, 8 an operational error.
 */
import { BlockDevError } from '../vfs/engine/blockdev/block-device.ts'
import { ImageFile } from '../vfs/engine/blockdev/image-file.ts'
import { FormatError } from '../vfs/engine/format/errors.ts'
import { repairImage } from '../vfs/engine/fsck/repair/repair.ts'
import type { RepairResult } from '../vfs/engine/fsck/repair/repair.ts'

export const EXIT_ERROR = 8

function text(image: string, r: RepairResult): string {
  const lines: string[] = []
  if (r.recovery !== undefined) lines.push(r.recovery)
  for (const x of r.repairs) lines.push(`pass ${x.pass}: ${x.outcome === 'fixed' ? 'fixed' : 'left'}: ${x.message} [${x.code}]`)
  // Problems of the last check that no refusal above already names.
  const said = (code: string, ino: number | undefined): boolean => r.repairs.some((x) => x.outcome === 'left' && x.code === code && (x.ino === undefined || x.ino === ino))
  for (const p of r.after.problems) {
    if (p.severity === 'error' && !said(p.code, p.ino)) lines.push(`pass ${p.pass}: left: ${p.message} [${p.code}]`)
  }
  if (r.after.dropped > 0) lines.push(`... and ${r.after.dropped} more problems left`)
  const fixed = r.repairs.filter((x) => x.outcome === 'fixed').length
  const left = r.after.problems.filter((p) => p.severity === 'error').length + r.after.dropped
  if (r.exitCode === 0) lines.push(`${image}: clean, nothing written`)
  else if (r.exitCode === 1) lines.push(`${image}: ${fixed} repair${fixed === 1 ? '' : 's'} made${r.recovery === undefined ? '' : ' after journal replay'}; clean now`)
  else lines.push(`${image}: ${fixed} repair${fixed === 1 ? '' : 's'} made, errors left uncorrected${left > 0 ? ` (${left} problem${left === 1 ? '' : 's'})` : ''}`)
  return `${lines.join('\n')}\n`
}

export async function fsckRepair(image: string, json: boolean): Promise<number> {
  let dev: ImageFile
  try {
    dev = await ImageFile.open(image)
  } catch (err) {
    const why = err instanceof BlockDevError && err.code === 'BLOCKDEV_LOCKED' ? `${err.message} (not repaired while it is served)` : err instanceof Error ? err.message : String(err)
    process.stderr.write(`tsnfs fsck: ${image}: ${why}\n`)
    return EXIT_ERROR
  }
  try {
    const result = await repairImage(dev)
    process.stdout.write(json ? `${JSON.stringify(result)}\n` : text(image, result))
    return result.exitCode
  } catch (err) {
    const why = err instanceof FormatError ? `${err.message} (${err.code})` : err instanceof Error ? err.message : String(err)
    process.stderr.write(`tsnfs fsck: ${image}: ${why}\n`)
    return EXIT_ERROR
  } finally {
    await dev.close()
  }
}
