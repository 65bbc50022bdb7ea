/*
 * A simulated power loss on a loop-mounted ext4 image: mounted with
 * `commit=60` so the kernel's own journal commit (every 5 s by default) does
 * not make anything durable within a test, then EXT4_IOC_SHUTDOWN with
 * EXT4_GOING_FLAGS_NOLOGFLUSH (the journal is not flushed, as in a crash; the
 * file system answers EIO from then on), unmounted, and mounted again: the
 * journal replays what was committed, nothing else survives. Needs root and
 * loop devices (whyNoLoopMount says why not).
 */
import type { Test } from 'tap'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { mkfs, scratch, sh, whyNoLoopMount } from '../vfs/engine/format-helpers.ts'

export { whyNoLoopMount }

/** _IOR('X', 125, __u32) */
const EXT4_IOC_SHUTDOWN = 0x8004587d
const EXT4_GOING_FLAGS_NOLOGFLUSH = 2

export interface CrashDisk {
  /** Where the image is mounted (while mounted). */
  readonly dir: string
  /** Mount the image (with commit=60: nothing committed but by an fsync). */
  mount(): void
  /** Power loss: the journal's uncommitted transaction is dropped; then unmount. */
  crash(): void
  /** Unmount (idempotent). */
  unmount(): void
}

/** A fresh 64 MiB ext4 image under a scratch directory, unmounted at teardown. */
export function crashDisk(t: Test): CrashDisk {
  const base = scratch(t, 'crash')
  const image = path.join(base, 'disk.img')
  const dir = path.join(base, 'mnt')
  fs.mkdirSync(dir)
  mkfs(image, 64 << 20)
  let mounted = false
  const disk: CrashDisk = {
    dir,
    mount() {
      sh('mount', ['-o', 'loop,commit=60', image, dir])
      mounted = true
    },
    crash() {
      // python3's fcntl.ioctl: Node has no ioctl. The flag is the kernel's "no log flush": a crash.
      const py = `import fcntl, os, struct\nfd = os.open(${JSON.stringify(dir)}, os.O_RDONLY)\nfcntl.ioctl(fd, ${EXT4_IOC_SHUTDOWN}, struct.pack('I', ${EXT4_GOING_FLAGS_NOLOGFLUSH}))\n`
      const r = spawnSync('python3', ['-c', py], { encoding: 'utf8' })
      if (r.status !== 0) throw new Error(`EXT4_IOC_SHUTDOWN failed: ${r.stderr}`)
    },
    unmount() {
      if (!mounted) return
      sh('umount', [dir])
      mounted = false
    },
  }
  t.teardown(() => {
    if (mounted) spawnSync('umount', ['-l', dir])
  })
  return disk
}

/** Every path below `dir` with its type (`d`, `f`, `l`), sorted; lost+found left out. */
export function listTree(dir: string): string[] {
  const out: string[] = []
  const walk = (rel: string): void => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const p = rel === '' ? e.name : `${rel}/${e.name}`
      if (p === 'lost+found') continue
      out.push(`${p} ${e.isDirectory() ? 'd' : e.isSymbolicLink() ? 'l' : 'f'}`)
      if (e.isDirectory()) walk(p)
    }
  }
  walk('')
  return out.sort()
}
