/**
 * The standby's side of a full resync over one large directory (resync-target.ts):
 * `npx tsx bench/replication-resync-dir.ts [--entries N] [--parts P]`.
 *
 * Writes N empty files (default 20,000) into a directory, then gives a ResyncApplier the
 * primary's listing of the same names in P parts (default 5; the sender cuts at most 4,096
 * entries per part), twice: with the listing kept between parts (one read of the directory),
 * and with it dropped before each part (a read per part, as before the cache). Prints the
 * time of each and the directory reads.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ResyncApplier } from '../server/replication/resync-target.ts'
import type { ResyncAttr, ResyncEntry } from '../server/replication/resync-target.ts'
import { Applier } from '../vfs/replica/applier.ts'
import { nameCookie } from '../vfs/replica/dir-cookies.ts'
import { IdMap, ROOT_VID } from '../vfs/replica/id-map.ts'
import { LocalVfs } from '../vfs/local/local-vfs.ts'
import type { DirPage, FileRef } from '../vfs/types.ts'

function arg(name: string): string | undefined {
  const at = process.argv.indexOf(name)
  return at > 0 ? process.argv[at + 1] : undefined
}

class CountingVfs extends LocalVfs {
  starts = 0
  override readdir(dir: FileRef, cookie: bigint, max: number): Promise<DirPage> {
    if (cookie === 0n) this.starts++
    return super.readdir(dir, cookie, max)
  }
}

const n = Number(arg('--entries') ?? 20_000)
const parts = Number(arg('--parts') ?? 5)
const MAX_COOKIE = (1n << 64n) - 1n
const time = { sec: 1_700_000_000, nsec: 0 }
const attr: ResyncAttr = { type: 'file', mode: 0o644, uid: 0, gid: 0, size: 0n, atime: time, mtime: time, rdev: { major: 0, minor: 0 }, target: Buffer.alloc(0) }
const dirAttr: ResyncAttr = { ...attr, type: 'dir', mode: 0o755 }

async function main(): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), 'tsnfs-bench-rsdir-'))
  try {
    const copy = join(base, 'copy')
    mkdirSync(copy)
    const entries: (ResyncEntry & { cookie: bigint })[] = []
    for (let i = 0; i < n; i++) {
      const name = Buffer.from(`entry-${String(i)}`)
      writeFileSync(join(copy, name.toString()), '')
      entries.push({ name, cookie: nameCookie(name), ref: { id: (1n << 40n) | BigInt(i + 2), gen: 1 }, attr, verify: false })
    }
    entries.sort((a, b) => (a.cookie < b.cookie ? -1 : a.cookie > b.cookie ? 1 : 0))
    const backend = new CountingVfs({ root: copy, stateDir: join(base, 'state', 'local') })
    const map = await IdMap.open({ dir: join(base, 'state', 'map'), root: backend.root(), epoch: 1 })
    const target = new ResyncApplier({ backend, map, applier: new Applier({ backend, map }) })
    const run = async (perPart: boolean): Promise<{ ms: number; reads: number }> => {
      await target.begin()
      const before = backend.starts
      const t0 = performance.now()
      const per = Math.ceil(entries.length / parts)
      let from = 0n
      for (let p = 0; p < parts; p++) {
        if (perPart) await target.begin()
        const slice = entries.slice(p * per, (p + 1) * per)
        const to = p === parts - 1 ? MAX_COOKIE : (slice.at(-1)?.cookie ?? MAX_COOKIE)
        await target.dir({ dir: ROOT_VID, dirAttr, cookieFrom: from, cookieTo: to, entries: slice })
        from = to
      }
      return { ms: performance.now() - t0, reads: backend.starts - before }
    }
    // The first pass binds every name (adoption); the timed ones find everything in place.
    await run(false)
    const kept = await run(false)
    const reread = await run(true)
    console.log(`${String(n)} entries in ${String(parts)} parts: listing kept ${kept.ms.toFixed(0)} ms (${String(kept.reads)} directory read); read per part ${reread.ms.toFixed(0)} ms (${String(reread.reads)} reads)`)
    await map.close()
    await backend.close()
  } finally {
    rmSync(base, { recursive: true, force: true })
  }
}

await main()
