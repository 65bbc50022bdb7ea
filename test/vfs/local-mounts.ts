/* tmpfs mounts for the crossmnt tests (they run as root); everything mounted is unmounted at teardown. */
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import type { Test } from 'tap'

export class Mounts {
  readonly #mounted: string[] = []

  constructor(t: Test) {
    t.teardown(() => {
      this.unmountAll()
    })
  }

  /** Mounts a fresh tmpfs of `size` at `dir` (made if missing); false when this host does not let us. */
  tmpfs(dir: string, size = '16m'): boolean {
    fs.mkdirSync(dir, { recursive: true })
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'ignore' })
    } catch {
      return false
    }
    this.#mounted.push(dir)
    return true
  }

  /** Unmounts `dir` (lazily: a server may still hold fds in it). */
  unmount(dir: string): void {
    const i = this.#mounted.lastIndexOf(dir)
    if (i === -1) return
    this.#mounted.splice(i, 1)
    execFileSync('umount', ['-l', dir])
  }

  /** Innermost first. Also called at the end of test bodies: a testdir is removed before teardowns run. */
  unmountAll(): void {
    for (const dir of this.#mounted.slice().reverse()) this.unmount(dir)
  }
}

export const SKIP_MOUNT = 'SKIP: cannot mount a tmpfs here (needs root and mount permission)'
