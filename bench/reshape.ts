/*
 * The reshape's speed (issue 14 item 3, vfs/volume/reshape.ts): a RAID-5 of 3 image files (a
 * 256 MiB volume by default), every byte written with seeded data, takes a 4th disk offline
 * (growDisks, as `tsnfs volume grow DISK... --add NEWDISK` does), idle. The reference, in the same
 * run on the same directory: the members copied sequentially to other files (read and write the
 * same bytes per member, 4 MiB at a time, then fsync), which is the floor any restripe works
 * against. Runs interleaved (reference, reshape, reference, ...); medians and the ratio. The
 * volume's bytes are checked after each reshape (SHA-256 of the old size), so a fast wrong copy
 * does not count.
 *
 *   npx tsx bench/reshape.ts [--size MiB] [--runs N] [--dir DIR] [--window MiB]
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { ImageFile } from '../vfs/engine/blockdev/image-file.ts'
import { createVolume } from '../vfs/volume/create-volume.ts'
import { growDisks } from '../vfs/volume/grow.ts'
import { MEMBER_RESERVED } from '../vfs/volume/member-format.ts'
import { openVolume } from '../vfs/volume/open-volume.ts'
import { median, round } from './results.ts'

const MiB = 1024 * 1024
const STEP = 4 * MiB

async function sha(paths: readonly string[], bytes: number): Promise<string> {
  const v = await openVolume(paths, { readOnly: true })
  try {
    const h = createHash('sha256')
    for (let at = 0; at < bytes; at += STEP) h.update(await v.device.read(at, Math.min(STEP, bytes - at)))
    return h.digest('hex')
  } finally {
    await v.close()
  }
}

async function makeVolume(dir: string, tag: string, member: number): Promise<{ paths: string[]; size: number; digest: string }> {
  const paths = [0, 1, 2].map((i) => join(dir, `${tag}-${i}.img`))
  const disks = []
  for (const path of paths) disks.push({ path, dev: await ImageFile.create(path, MEMBER_RESERVED + member) })
  await createVolume(tag, 'raid5', disks)
  for (const d of disks) await d.dev.close()
  const v = await openVolume(paths)
  const size = v.device.size
  const seed = randomBytes(STEP)
  for (let at = 0; at < size; at += STEP) {
    seed[0] = (at / STEP) & 0xff
    await v.device.write(at, seed.subarray(0, Math.min(STEP, size - at)))
  }
  await v.device.flush()
  await v.close()
  return { paths, size, digest: await sha(paths, size) }
}

/** The reference: each member's bytes read and written to another file, sequentially, then fsynced. */
async function copyMembers(paths: readonly string[], dir: string): Promise<number> {
  const start = process.hrtime.bigint()
  for (const [i, path] of paths.entries()) {
    const src = await ImageFile.open(path, { readOnly: true })
    const dst = await ImageFile.create(join(dir, `copy-${i}.img`), src.size)
    for (let at = 0; at < src.size; at += STEP) {
      const chunk = await src.read(at, Math.min(STEP, src.size - at))
      await dst.write(at, chunk)
    }
    await dst.flush()
    await src.close()
    await dst.close()
  }
  return Number(process.hrtime.bigint() - start) / 1e9
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { size: { type: 'string' }, runs: { type: 'string' }, dir: { type: 'string' }, window: { type: 'string' } } })
  const volumeMiB = Number(values.size ?? 256)
  const runs = Number(values.runs ?? 3)
  const member = (volumeMiB / 2) * MiB
  const windowBytes = values.window === undefined ? undefined : Number(values.window) * MiB
  const dir = await mkdtemp(join(values.dir ?? tmpdir(), 'tsnfs-reshape-bench-'))
  const reshape: number[] = []
  const reference: number[] = []
  try {
    for (let run = 0; run < runs; run++) {
      const { paths, size, digest } = await makeVolume(dir, `r${run}`, member)
      reference.push(await copyMembers(paths, dir))
      const added = join(dir, `r${run}-3.img`)
      await (await ImageFile.create(added, MEMBER_RESERVED + member)).close()
      const start = process.hrtime.bigint()
      const r = await growDisks(paths, [added], { ...(windowBytes === undefined ? {} : { reshape: { windowBytes } }) })
      reshape.push(Number(process.hrtime.bigint() - start) / 1e9)
      if (!r.grown) throw new Error('not reshaped')
      if ((await sha(r.paths, size)) !== digest) throw new Error(`run ${run}: the volume's bytes changed`)
      process.stderr.write(`${JSON.stringify({ run, reshapeSeconds: reshape[run], referenceSeconds: reference[run], seq: r.config.seq })}\n`)
      for (const name of await readdir(dir)) await rm(join(dir, name), { force: true })
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
  const volumeMB = (volumeMiB * MiB) / 1e6
  const reshapeMBs = volumeMB / median(reshape)
  // The reference moves 3 members' bytes (the volume plus its parity): per volume byte as the reshape counts.
  const referenceMBs = volumeMB / median(reference)
  process.stdout.write(
    `reshape RAID-5 3 -> 4 members, ${volumeMiB} MiB volume, ${runs} runs, load ${loadavg().map((x) => round(x, 2)).join(' ')}\n` +
      `  reshape   median ${round(median(reshape), 2)} s = ${round(reshapeMBs, 1)} MB/s of volume bytes\n` +
      `  reference median ${round(median(reference), 2)} s = ${round(referenceMBs, 1)} MB/s (the members copied sequentially)\n` +
      `  ratio reshape/reference ${round(reshapeMBs / referenceMBs, 2)}\n`,
  )
}

await main()
