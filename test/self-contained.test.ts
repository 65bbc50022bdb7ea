/*
 * The project tests, benchmarks and builds from its own files: no tracked
 * file may refer outside the repository (a sibling folder of the checkout,
 * a development machine's absolute paths, or a relative path that climbs
 * above the repository root), and no tracked symlink may point out of it.
 * A fresh clone on an empty machine then has everything it needs.
 */
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

/** Paths of a development machine that a clone elsewhere does not have. */
const FOREIGN = [
  /(?:\.\.\/)+shared\b/g, // the team's sibling folder, by any relative route
  /\/work\/[\w.-]+/g, // the development machine's checkouts
  /\bshared\/(?:tools|specs)\b/g, // its contents, however reached
]

/** A relative path token: one or more "../" not in the middle of another path. */
const CLIMB = /(?<![\w.\-/$}])(?:\.\.\/)+[^\s'"`)\]>,;:*|]*/g

function inside(p: string): boolean {
  const rel = relative(root, p)
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !rel.startsWith(sep))
}

/** What in `text` (the file `file`, relative to the root) refers outside the repository. */
export function outsideRefs(file: string, text: string): string[] {
  const found: string[] = []
  for (const re of FOREIGN) for (const m of text.matchAll(re)) found.push(m[0])
  for (const m of text.matchAll(CLIMB)) {
    // Relative to the file's own directory, as imports, links and `$(dirname "$0")/..` are.
    if (!inside(resolve(root, dirname(file), m[0]))) found.push(m[0])
  }
  return [...new Set(found)]
}

const SKIP_DIRS = new Set(['.git', 'node_modules', 'dist', '.tap', 'coverage'])

/** Tracked files, or (no .git, e.g. an unpacked tarball) every file outside the build outputs. */
function projectFiles(): string[] {
  if (existsSync(join(root, '.git'))) {
    return execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' }).split('\0').filter((f) => f !== '')
  }
  const out: string[] = []
  const walk = (dir: string): void => {
    for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
      const rel = dir === '' ? e.name : `${dir}/${e.name}`
      if (e.isDirectory()) {
        if (!SKIP_DIRS.has(e.name)) walk(rel)
      } else out.push(rel)
    }
  }
  walk('')
  return out
}

t.test('the scanner flags what leaves the repository and nothing inside it', async (t) => {
  // Built from pieces, so this file does not trip its own scan.
  const up = (n: number): string => '../'.repeat(n)
  const sib = ['sha', 'red'].join('')
  const dev = ['', 'work', ''].join('/')
  t.strictSame(outsideRefs('test/interop/x.test.ts', `import { a } from '${up(2)}bench/nfsprobe.ts'`), [])
  t.strictSame(outsideRefs('test/vfs/x.test.ts', `await vfs.lookup(root, '${up(2)}etc/passwd') // a traversal attempt`), [])
  t.strictSame(outsideRefs('test/client/x.test.ts', `symlink('${up(1)}y/f', 'link')`), [])
  t.strictSame(outsideRefs('bench/README.md', `see [the probe](${up(1)}tools/nfsprobe/README.md)`), [])
  t.strictSame(outsideRefs('test/interop/x.test.ts', `resolve(here, '${up(3)}${sib}/tools/nfsprobe/nfsprobe.c')`), [
    `${up(3)}${sib}`,
    `${sib}/tools`,
    `${up(3)}${sib}/tools/nfsprobe/nfsprobe.c`,
  ])
  t.strictSame(outsideRefs('bench/ganesha.sh', `exec "$HERE/${up(2)}${sib}/tools/ganesha/ganesha.sh"`), [`${up(2)}${sib}`, `${sib}/tools`])
  t.strictSame(outsideRefs('bench/README.md', `build with \`gcc ${up(1)}${sib}/tools/nfsprobe/nfsprobe.c\``), [`${up(1)}${sib}`, `${sib}/tools`])
  t.strictSame(outsideRefs('test/fixtures/x.ts', ` * (and ${dev}${sib}/specs/README.md §7)`), [`${dev}${sib}`, `${sib}/specs`])
  t.strictSame(outsideRefs('bench/x.ts', `const sibling = '${up(2)}other-checkout/tool'`), [`${up(2)}other-checkout/tool`])
  t.strictSame(outsideRefs('README.md', `clone to ${dev}main first`), [`${dev}main`])
})

t.test('no file of the project refers outside the repository', async (t) => {
  const files = projectFiles()
  t.ok(files.length > 100, `${String(files.length)} files`)
  const areas = ['test/', 'bench/', '.ci/', 'tools/', 'package.json']
  for (const a of areas) t.ok(files.some((f) => f === a || f.startsWith(a)), `${a} is among them`)
  const offenders: string[] = []
  for (const file of files) {
    const abs = join(root, file)
    let st
    try {
      st = lstatSync(abs)
    } catch {
      continue // deleted in the working tree, not yet committed
    }
    if (st.isSymbolicLink()) {
      if (!inside(resolve(dirname(abs), readlinkSync(abs)))) offenders.push(`${file}: symlink to ${readlinkSync(abs)}`)
      continue
    }
    if (!st.isFile() || st.size > 4 * 1024 * 1024) continue
    const buf = readFileSync(abs)
    if (buf.includes(0)) continue // binary
    for (const ref of outsideRefs(file, buf.toString('utf8'))) offenders.push(`${file}: ${ref}`)
  }
  t.strictSame(offenders, [], 'every reference stays inside the repository')
})
