/*
 * What the ext4 format tests share: images made by the real mkfs.ext4, the
 * kernel's loop mount (as root) to fill them, a seeded byte generator, and
 * the reader opened over an image file.
 */
import type { Test } from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Ext4Image } from '../../../vfs/engine/reader/image.ts'
import type { Inode } from '../../../vfs/engine/format/inode.ts'
import { FileReadAt } from '../../../vfs/engine/reader/read-at.ts'
import { prng, prngU32 } from '../../helpers/prng.ts'
import { TSNFS_ARGS } from '../../cli/cli.ts'

export const ROOT = path.resolve(import.meta.dirname, '../../..')

export function scratch(t: Test, prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tsnfs-${prefix}-`))
  t.teardown(() => {
    fs.rmSync(dir, { recursive: true, force: true })
  })
  return dir
}

/** Run a command to completion; throw with its stderr when it fails. */
export function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${r.stderr}${r.error?.message ?? ''}`)
  return r.stdout
}

/** A sparse image of size bytes formatted by mkfs.ext4 with extra arguments. */
export function mkfs(file: string, size: number, args: string[] = []): void {
  fs.closeSync(fs.openSync(file, 'w'))
  fs.truncateSync(file, size)
  sh('mkfs.ext4', ['-F', '-q', ...args, file])
}

/** Why the kernel cannot loop-mount here, or undefined when it can. */
export function whyNoLoopMount(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root: loop mounts need root'
  if (!fs.existsSync('/dev/loop-control')) return 'no /dev/loop-control: this machine has no loop devices'
  const r = spawnSync('losetup', ['-f'], { encoding: 'utf8' })
  if (r.status !== 0) return `losetup -f failed: ${r.stderr.trim()}`
  return undefined
}

/** Loop-mount image on a fresh directory, run fill, unmount (also when fill throws). */
export async function withMount<T>(t: Test, image: string, fill: (dir: string) => Promise<T> | T): Promise<T> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-mnt-'))
  sh('mount', ['-o', 'loop', image, dir])
  try {
    return await fill(dir)
  } finally {
    sh('umount', [dir])
    fs.rmdirSync(dir)
    t.comment(`unmounted ${image}`)
  }
}

/** The shared seeded generator (mulberry32), under the name this file's tests use. */
export { prng as rng }

/** Bytes from the shared generator's raw outputs, the low byte of each: a failing run repeats from its printed seed. */
export function seededBytes(seed: number): (n: number) => Buffer {
  const u32 = prngU32(seed)
  return (n) => {
    const out = Buffer.allocUnsafe(n)
    for (let i = 0; i < n; i++) out[i] = u32() & 0xff
    return out
  }
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex')
}

/** Open image with the reader; closed at teardown. */
export async function openImage(t: Test, image: string): Promise<Ext4Image> {
  const dev = await FileReadAt.open(image)
  t.teardown(() => dev.close())
  return Ext4Image.open(dev)
}

/** sha256 of a whole file read through the reader in 1 MiB pieces. */
export async function readerSha(img: Ext4Image, ino: number, inode: Inode): Promise<string> {
  const h = createHash('sha256')
  for (let off = 0; off < inode.size; off += 1 << 20) h.update(await img.readFile(ino, inode, off, 1 << 20))
  return h.digest('hex')
}

export interface CliRun {
  code: number | null
  stdout: Buffer
  stderr: string
}

/** The environment without tap's coverage hooks, which make each short command several times slower. */
function childEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !k.startsWith('_TAPJS')))
}

/** `tsnfs ...args` (the build when fresh, else the sources), stdout kept as bytes (cat). */
export function tsnfsRaw(args: string[]): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...TSNFS_ARGS, ...args], { cwd: ROOT, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('close', (code) => {
      resolve({ code, stdout: Buffer.concat(out), stderr })
    })
  })
}
