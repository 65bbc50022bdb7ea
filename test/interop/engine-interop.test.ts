/*
 * Independent clients against an engine export (backend=engine, an ext4-format image): our libnfs
 * probe's conform checks and Debian's libnfs-utils; then the image is judged by e2fsck -fn and
 * read through the kernel's loop mount, and a restarted server still serves every byte.
 */
import t from 'tap'
import type { Test } from 'tap'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { run, startServer } from '../helpers/server.ts'
import { buildProbe, checkReport, CONFORM_CHECKS, runConform } from './conform.ts'
import { ImageFile } from '../../vfs/engine/blockdev/image-file.ts'
import { makeFileSystem } from '../../vfs/engine/mkfs/mkfs.ts'
import { whyNoLoopMount, withMount } from '../vfs/engine/format-helpers.ts'

async function newImage(file: string, size = 512 * 2 ** 20): Promise<void> {
  const dev = await ImageFile.create(file, size)
  try {
    await makeFileSystem(dev, { zeroed: true })
  } finally {
    await dev.close()
  }
}

function fsck(t: Test, image: string): void {
  const r = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' })
  t.equal(r.status, 0, 'e2fsck -fn calls the image clean')
  if (r.status !== 0) t.comment(r.stdout + r.stderr)
}

t.test('nfsprobe conform passes every check against an engine export', async (t) => {
  const bin = await buildProbe(t)
  const base = t.testdir({})
  const image = join(base, 'data.img')
  await newImage(image)
  const s = await startServer(t, `/data *(rw,insecure,no_root_squash,backend=engine,image=${image})\n`)
  const r = await runConform(bin, s.url('/data'))
  t.strictSame(r.failLines, [], 'no check failed')
  t.strictSame(r.passed, [...CONFORM_CHECKS], 'every check ran and passed, in order')
  checkReport(t, r)
  await s.server.close()
  fsck(t, image)
})

t.test('libnfs-utils on an engine export: byte-exact both ways, e2fsck clean, the kernel sees the same bytes, a restart keeps them', async (t) => {
  const base = t.testdir({ work: {} })
  const image = join(base, 'data.img')
  const work = join(base, 'work')
  await newImage(image)
  const exportsText = `/data *(rw,insecure,no_root_squash,backend=engine,image=${image})\n`
  let s = await startServer(t, exportsText)
  const big = randomBytes(5 * 1024 * 1024 + 17)
  fs.writeFileSync(join(work, 'big.bin'), big)
  fs.writeFileSync(join(work, 'small.txt'), 'hello from libnfs\n')
  fs.writeFileSync(join(work, 'empty'), '')
  for (const f of ['big.bin', 'small.txt', 'empty']) await run('nfs-cp', [join(work, f), s.url('/data', `/${f}`)])
  await run('nfs-cp', [s.url('/data', '/big.bin'), join(work, 'back.bin')])
  t.ok(fs.readFileSync(join(work, 'back.bin')).equals(big), '5 MiB round-trips through the engine')
  t.equal((await run('nfs-cat', [s.url('/data', '/small.txt')])).stdout, 'hello from libnfs\n')
  const ls = await run('nfs-ls', ['-R', s.url('/data')])
  const names = ls.stdout.trim().split('\n').map((l) => l.slice(l.lastIndexOf(' ') + 1)).sort()
  t.strictSame(names, ['big.bin', 'empty', 'lost+found', 'small.txt'], 'nfs-ls -R lists the tree')
  await s.server.close()
  fsck(t, image)

  s = await startServer(t, exportsText)
  await run('nfs-cp', [s.url('/data', '/big.bin'), join(work, 'again.bin')])
  t.ok(fs.readFileSync(join(work, 'again.bin')).equals(big), 'after a restart the file is still byte-exact')
  await s.server.close()

  const why = whyNoLoopMount()
  if (why !== undefined) {
    t.comment(`kernel check skipped: ${why}`)
    return
  }
  await withMount(t, image, (mnt) => {
    t.ok(fs.readFileSync(join(mnt, 'big.bin')).equals(big), 'the kernel reads the 5 MiB file byte-exact')
    t.equal(fs.readFileSync(join(mnt, 'small.txt'), 'utf8'), 'hello from libnfs\n')
    t.equal(fs.statSync(join(mnt, 'empty')).size, 0)
  })
})

t.test('a second server cannot open the same image read-write', async (t) => {
  const base = t.testdir({})
  const image = join(base, 'data.img')
  await newImage(image, 64 * 2 ** 20)
  const exportsText = `/data *(rw,insecure,backend=engine,image=${image})\n`
  const s = await startServer(t, exportsText)
  await t.rejects(startServer(t, exportsText), /BLOCKDEV_LOCKED/, 'the second opener is refused')
  await s.server.close()
})
