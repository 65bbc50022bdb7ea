import t from 'tap'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

// DESIGN.md §2 / STYLE.md §3.2: the import edges between top-level folders.
const ALLOWED: Record<string, readonly string[]> = {
  // common/: process-level helpers the client and the server share (idle memory reclaim).
  common: ['common'],
  // locks/: the lock table, knowing nothing of RPC; the NLM server and the client's lock bookkeeping stack on it.
  locks: ['locks'],
  xdr: ['xdr'],
  // vfs/ may use common/ (node:* only): the image lock file (common/lock-file.ts).
  vfs: ['vfs', 'common'],
  // backup/: the tar format, levels, restore and catalog (issue 16); knows nothing of NDMP.
  backup: ['backup', 'vfs', 'common'],
  // dma/: our backup manager (the NDMP client side): schedules, pools, jobs; drives any NDMP server.
  dma: ['dma', 'client', 'backup', 'xdr', 'common'],
  client: ['client', 'xdr', 'common', 'locks'],
  server: ['server', 'xdr', 'vfs', 'common', 'locks', 'backup'],
  // cli/ runs the benchmark harness (tsnfs bench), which lives in bench/.
  cli: ['cli', 'server', 'client', 'xdr', 'vfs', 'bench', 'common', 'backup', 'dma'],
}

/** The maintained clients of the cluster backend's database and object store (issue 17 §4). */
const CLUSTER_CLIENTS: readonly string[] = ['pg', '@aws-sdk/client-s3']

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

function sources(dir: string): string[] {
  const out: string[] = []
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) out.push(...sources(p))
    else if (name.endsWith('.ts')) out.push(p)
  }
  return out
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g

export function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  return [...text.matchAll(IMPORT)].map((m) => m[1] ?? m[2] ?? '')
}

t.test('every import stays within the allowed layers', async (t) => {
  let checked = 0
  for (const [layer, allowed] of Object.entries(ALLOWED)) {
    let files: string[]
    try {
      files = sources(join(root, layer))
    } catch {
      continue
    }
    for (const file of files) {
      for (const spec of importsOf(file)) {
        if (!spec.startsWith('.')) {
          // Packages: vfs/, common/, locks/ and xdr/ use node:* only (xdr/gen is a build tool, not shipped code).
          // The cluster backend's two clients (issue 17) are the only packages under vfs/, each in its adapter folder.
          if (layer === 'vfs' && file.includes('/vfs/cluster/clients/') && CLUSTER_CLIENTS.includes(spec)) continue
          if ((layer === 'vfs' || (layer === 'backup' && spec !== 'better-sqlite3') || layer === 'common' || layer === 'locks' || (layer === 'xdr' && !file.includes('/xdr/gen/'))) && !spec.startsWith('node:')) {
            t.fail(`${relative(root, file)} imports package ${spec}`)
          }
          continue
        }
        const target = relative(root, resolve(dirname(file), spec)).split('/')[0] ?? ''
        checked++
        if (!allowed.includes(target)) t.fail(`${relative(root, file)} imports ${spec} (layer ${target} not allowed in ${layer})`)
      }
    }
  }
  t.ok(checked > 10, `checked ${checked} relative imports`)
})

t.test('the checker notices a forbidden edge', async (t) => {
  const dir = t.testdir({ 'a.ts': "import { x } from '../server/index.ts'\nexport { y } from './b.ts'\n" })
  t.strictSame(importsOf(join(dir, 'a.ts')), ['../server/index.ts', './b.ts'])
})

// DESIGN.md §5: block layers import nothing of ours but the block-device interface; the block
// devices themselves import nothing of the engine above them (only the native I/O helper).
const INNER: Record<string, readonly string[]> = {
  'vfs/volume': ['vfs/volume', 'vfs/engine/blockdev'],
  // The image lock (image-lock.ts) is the lock file every layer shares (common/lock-file.ts).
  'vfs/engine/blockdev': ['vfs/engine/blockdev', 'vfs/native-io.ts', 'vfs/native-addon.ts', 'common/lock-file.ts'],
  // Growing a file system works on the on-disk format alone: no engine (inodes, files, txn) above it.
  'vfs/engine/resize': ['vfs/engine/resize', 'vfs/engine/blockdev', 'vfs/engine/format', 'vfs/engine/mkfs', 'vfs/engine/jbd2', 'vfs/engine/reader/csum-verifier.ts', 'vfs/engine/crc32c.ts'],
  // The .snapshot view wraps any Vfs: it knows the Vfs interface and its errors, not the engine or volumes.
  'vfs/snapdir': ['vfs/snapdir', 'vfs/types.ts', 'vfs/errors.ts'],
  // The replicating layer wraps any Vfs (DESIGN.md §5): VFS types only; the wire and the change log live in server/replication.
  'vfs/replica': ['vfs/replica', 'vfs/types.ts', 'vfs/errors.ts'],
  // The cluster backend (issue 17) knows the Vfs interface, the checks and the clock every backend shares and its own folder; its
  // database and object-store clients sit behind vfs/cluster/sql.ts and object-store.ts.
  'vfs/cluster': ['vfs/cluster', 'vfs/types.ts', 'vfs/errors.ts', 'vfs/names.ts', 'vfs/set-attr-checks.ts', 'vfs/clock.ts'],
}

t.test('block layers stack only on the block-device interface', async (t) => {
  let checked = 0
  for (const [dir, allowed] of Object.entries(INNER)) {
    let files: string[]
    try {
      files = sources(join(root, dir))
    } catch {
      continue
    }
    for (const file of files) {
      for (const spec of importsOf(file)) {
        if (!spec.startsWith('.')) continue
        const target = relative(root, resolve(dirname(file), spec))
        checked++
        if (!allowed.some((a) => target === a || target.startsWith(`${a}/`))) t.fail(`${relative(root, file)} imports ${spec} (${target} not allowed in ${dir})`)
      }
    }
  }
  t.ok(checked > 5, `checked ${checked} relative imports`)
})
