/*
 * tsnfs fsck IMAGE [--json] [--repair]: check an ext4 image as e2fsck -fn
 * does, read only, and exit as e2fsck does: 0 clean, 4 problems found (left
 * uncorrected), 8 an operational error (unreadable, not ext4, unsupported).
 * --repair (fsck-repair.ts) repairs what is safe, as e2fsck -fy.
 */
import { parseArgs } from 'node:util'
import { FormatError } from '../vfs/engine/format/errors.ts'
import { checkImage } from '../vfs/engine/fsck/check.ts'
import type { FsckResult } from '../vfs/engine/fsck/problems.ts'
import { FileReadAt } from '../vfs/engine/reader/read-at.ts'
import { fsckRepair } from './fsck-repair.ts'
import { wantsHelp } from './help.ts'

export const FSCK_USAGE = `usage: tsnfs fsck IMAGE [--json] [--repair]
  check an ext4 image (file or block device) read only, as e2fsck -fn:
  superblock and group descriptors, inodes and extent trees, directories and
  htrees, connectivity, link counts, bitmaps and free counts
  --json     the result as JSON: { clean, problems: [{ pass, code, message, ino?, block?, severity }], dropped }
             (with --repair: { recovery?, repairs: [{ pass, code, message, outcome }], before, after, exitCode })
  --repair   repair in place what is safe, as e2fsck -fy: replay the journal,
             finish the orphan list; lone bad checksums, deletion times, the
             resize inode's map, entries naming free
             inodes, file types, reconnection to /lost+found, link counts,
             bitmaps and group counts; the image is locked as the engine locks
             it (refused while served); every repair is printed, and what it
             will not touch is left and said
  exit status: 0 clean, 4 problems found (left), 8 operational error;
             with --repair also 1: errors corrected, clean now
`

export const EXIT_CLEAN = 0
export const EXIT_PROBLEMS = 4
export const EXIT_ERROR = 8

function text(image: string, r: FsckResult): string {
  const lines = r.problems.map((p) => `pass ${p.pass}: ${p.severity === 'note' ? 'note: ' : ''}${p.message} [${p.code}]`)
  if (r.dropped > 0) lines.push(`... and ${r.dropped} more problems`)
  const errors = r.problems.filter((p) => p.severity === 'error').length + r.dropped
  lines.push(r.clean ? `${image}: clean` : `${image}: ${errors} problem${errors === 1 ? '' : 's'} found`)
  return `${lines.join('\n')}\n`
}

export async function fsck(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    process.stdout.write(FSCK_USAGE)
    return 0
  }
  let positionals: string[]
  let json: boolean
  let repair: boolean
  try {
    const parsed = parseArgs({ args: argv, options: { json: { type: 'boolean' }, repair: { type: 'boolean' } }, allowPositionals: true })
    positionals = parsed.positionals
    json = parsed.values.json === true
    repair = parsed.values.repair === true
  } catch (err) {
    process.stderr.write(`tsnfs fsck: ${err instanceof Error ? err.message : String(err)}\n${FSCK_USAGE}`)
    return EXIT_ERROR
  }
  const [image, ...extra] = positionals
  if (image === undefined || extra.length > 0) {
    process.stderr.write(`tsnfs fsck: expected one IMAGE\n${FSCK_USAGE}`)
    return EXIT_ERROR
  }
  if (repair) return fsckRepair(image, json)
  let dev: FileReadAt
  try {
    dev = await FileReadAt.open(image)
  } catch (err) {
    process.stderr.write(`tsnfs fsck: ${image}: ${err instanceof Error ? err.message : String(err)}\n`)
    return EXIT_ERROR
  }
  try {
    const result = await checkImage(dev)
    process.stdout.write(json ? `${JSON.stringify(result)}\n` : text(image, result))
    return result.clean ? EXIT_CLEAN : EXIT_PROBLEMS
  } catch (err) {
    const why = err instanceof FormatError ? `${err.message} (${err.code})` : err instanceof Error ? err.message : String(err)
    process.stderr.write(`tsnfs fsck: ${image}: ${why}\n`)
    return EXIT_ERROR
  } finally {
    await dev.close()
  }
}
