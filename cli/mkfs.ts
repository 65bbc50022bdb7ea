/*
 * tsnfs mkfs IMAGE: make an ext4 file system for the storage engine, as
 * Debian 12's mkfs.ext4 would (vfs/engine/mkfs/). A new IMAGE is created as
 * a sparse file of --size bytes; an existing file or block device is
 * formatted in place at its own size, and refused without --force when it
 * already holds a file system.
 */
import { stat, unlink } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { ImageFile } from '../vfs/engine/blockdev/image-file.ts'
import { MkfsError } from '../vfs/engine/mkfs/errors.ts'
import { makeFileSystem } from '../vfs/engine/mkfs/mkfs.ts'
import type { MkfsOptions } from '../vfs/engine/mkfs/mkfs.ts'
import { probeFileSystem, uuidText } from '../vfs/engine/mkfs/probe.ts'
import { wantsHelp } from './help.ts'

export const MKFS_USAGE = `usage: tsnfs mkfs IMAGE [--size SIZE] [--block-size 4096|1024] [--bytes-per-inode N]
                  [--label L] [--uuid U] [--journal-blocks N] [--force]
  make an ext4 file system (Debian 12 mkfs.ext4's features and layout) for the storage engine
  IMAGE                 a new image file (created sparse; --size needed), or an existing file
                        or block device, formatted at its own size
  --size SIZE           bytes, with K, M, G or T (powers of 1024), e.g. 8G
  --block-size B        4096 or 1024 (default: 1024 below 512M, as mkfs.ext4)
  --bytes-per-inode N   one inode per N bytes (default: 4096 below 512M, 16384 up to 4T)
  --label L             volume name, at most 16 bytes
  --uuid U              file system UUID (default: random)
  --journal-blocks N    journal length in blocks, 1024..10240000 (default: as mkfs.ext4)
  --force               format an IMAGE that already holds a file system
`

const SIZE_UNITS: Readonly<Record<string, number>> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 }

class UsageError extends Error {}

function parseSize(text: string): number {
  const m = /^(\d+)([KMGT]?)$/i.exec(text.trim())
  const n = m === null ? NaN : Number(m[1]) * (SIZE_UNITS[(m[2] ?? '').toUpperCase()] ?? NaN)
  if (!Number.isSafeInteger(n) || n <= 0 || n % 512 !== 0) throw new UsageError(`--size: not a positive multiple of 512 bytes (digits, optionally K, M, G or T): ${text}`)
  return n
}

function parseInt(flag: string, text: string, min: number, max: number): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`--${flag}: an integer from ${min} to ${max}, got ${text}`)
  return n
}

function parseUuid(text: string): Buffer {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(text)) {
    throw new UsageError(`--uuid: not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx): ${text}`)
  }
  return Buffer.from(text.replaceAll('-', ''), 'hex')
}

interface Parsed {
  image: string
  size: number | undefined
  force: boolean
  options: Omit<MkfsOptions, 'zeroed'>
}

function parse(argv: string[]): Parsed {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      size: { type: 'string' },
      'block-size': { type: 'string' },
      'bytes-per-inode': { type: 'string' },
      label: { type: 'string' },
      uuid: { type: 'string' },
      'journal-blocks': { type: 'string' },
      force: { type: 'boolean' },
    },
  })
  const [image, ...extra] = positionals
  if (image === undefined || extra.length > 0) throw new UsageError('expected one IMAGE')
  const options: Omit<MkfsOptions, 'zeroed'> = {}
  const bs = values['block-size']
  if (bs !== undefined) {
    if (bs !== '1024' && bs !== '4096') throw new UsageError(`--block-size: 1024 or 4096, got ${bs}`)
    options.blockSize = bs === '1024' ? 1024 : 4096
  }
  const bpi = values['bytes-per-inode']
  if (bpi !== undefined) options.bytesPerInode = parseInt('bytes-per-inode', bpi, 1024, 64 * 2 ** 20)
  const jb = values['journal-blocks']
  if (jb !== undefined) options.journalBlocks = parseInt('journal-blocks', jb, 1024, 10240000)
  if (values.label !== undefined) {
    if (Buffer.byteLength(values.label) > 16) throw new UsageError(`--label: at most 16 bytes, got ${Buffer.byteLength(values.label)}`)
    options.label = values.label
  }
  if (values.uuid !== undefined) options.uuid = parseUuid(values.uuid)
  return { image, size: values.size === undefined ? undefined : parseSize(values.size), force: values.force === true, options }
}

/** The device to format and whether it reads as zeros; throws UsageError for what the user must change. */
async function openTarget(p: Parsed): Promise<{ dev: ImageFile; zeroed: boolean; created: boolean }> {
  const st = await stat(p.image).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  })
  if (st === null) {
    if (p.size === undefined) throw new UsageError(`${p.image} does not exist; --size is needed to create it`)
    return { dev: await ImageFile.create(p.image, p.size), zeroed: true, created: true }
  }
  if (p.size !== undefined && !(st.isFile() && st.size === p.size)) {
    throw new UsageError(`${p.image} exists${st.isFile() ? ` with ${st.size} bytes` : ''}; it is formatted at its own size (leave out --size, or remove it first)`)
  }
  const dev = await ImageFile.open(p.image)
  try {
    const found = await probeFileSystem(dev)
    if (found !== undefined && !p.force) {
      throw new MkfsError('MKFS_HAS_FS', `${p.image} already holds an ${found.type} file system${found.uuid !== undefined ? ` (UUID ${found.uuid})` : ''}; use --force to format it anyway`)
    }
  } catch (err) {
    await dev.close()
    throw err
  }
  // A file with no blocks allocated is all holes: it reads as zeros, like a new one.
  return { dev, zeroed: st.isFile() && st.blocks === 0, created: false }
}

export async function mkfs(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    process.stdout.write(MKFS_USAGE)
    return 0
  }
  let p: Parsed
  try {
    p = parse(argv)
  } catch (err) {
    process.stderr.write(`tsnfs mkfs: ${err instanceof Error ? err.message : String(err)}\n${MKFS_USAGE}`)
    return 2
  }
  let target: Awaited<ReturnType<typeof openTarget>>
  try {
    target = await openTarget(p)
  } catch (err) {
    process.stderr.write(`tsnfs mkfs: ${err instanceof Error ? err.message : String(err)}\n`)
    return err instanceof UsageError ? 2 : 1
  }
  const { dev, zeroed, created } = target
  try {
    // The journal is written even on a sparse file: see allocateJournal (every commit would otherwise flush host allocations).
    const r = await makeFileSystem(dev, { ...p.options, zeroed, allocateJournal: true })
    const g = r.geometry
    process.stdout.write(
      `${p.image}: ext4, ${g.blocksCount} blocks of ${g.blockSize} bytes, ${g.inodesCount} inodes, ${g.groupCount} groups, ` +
        `journal ${g.journalBlocks} blocks, UUID ${uuidText(r.uuid)}\n`,
    )
    await dev.close()
    return 0
  } catch (err) {
    await dev.close()
    // Leave nothing behind that looks like a file system we did not finish.
    if (created) await unlink(p.image).catch(() => {})
    process.stderr.write(`tsnfs mkfs: ${p.image}: ${err instanceof Error ? err.message : String(err)}\n`)
    return 1
  }
}
