/*
 * cp -r from a source that lists one name twice (a broken or hostile server;
 * here a Side that says so). The first time the name is a symlink to a
 * directory outside the target, the second time a directory with a file in
 * it: a copy that took both would make the symlink, then write the file
 * through it, outside the target. The copy refuses the listing instead and
 * writes nothing outside its target.
 */
import t from 'tap'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough, Readable } from 'node:stream'
import { copy } from '../../cli/copy.ts'
import { PathError } from '../../cli/common.ts'
import { localSide } from '../../cli/sides.ts'
import type { Side, SideStat } from '../../cli/sides.ts'

const when = new Date(1_700_000_000_000)
const stat = (type: SideStat['type']): SideStat => ({ type, mode: 0o755, size: type === 'file' ? 5 : 0, atime: when, mtime: when })

/** /src lists "a" twice: a symlink to `outside` at the first lstat of /src/a, a directory holding "f" after. */
function lyingSide(outside: string): Side & { lstats: number } {
  const side = {
    lstats: 0,
    show: (p: string) => `fake:${p}`,
    join: (d: string, n: string) => `${d}/${n}`,
    basename: (p: string) => p.slice(p.lastIndexOf('/') + 1),
    lstat: (p: string): Promise<SideStat> => {
      if (p === '/src') return Promise.resolve(stat('directory'))
      if (p === '/src/a') return Promise.resolve(stat(side.lstats++ === 0 ? 'symlink' : 'directory'))
      if (p === '/src/a/f') return Promise.resolve(stat('file'))
      return Promise.reject(Object.assign(new Error(`${p}: no such file`), { code: 'ENOENT' }))
    },
    stat: (p: string) => side.lstat(p),
    readdir: (p: string) => Promise.resolve(p === '/src' ? ['a', 'a'] : ['f']),
    readlink: () => Promise.resolve(outside),
    mkdir: () => Promise.reject(new Error('not a target')),
    symlink: () => Promise.reject(new Error('not a target')),
    unlink: () => Promise.reject(new Error('not a target')),
    read: () => Readable.from([Buffer.from('owned')]),
    write: () => new PassThrough(),
    chmod: () => Promise.resolve(),
    utimes: () => Promise.resolve(),
  }
  return side
}

t.test('a name listed twice (a symlink, then a directory): the copy refuses it, nothing is written outside the target', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'tsnfs-copy-dup-'))
  t.teardown(() => { rmSync(work, { recursive: true, force: true }) })
  const outside = join(work, 'outside')
  mkdirSync(outside)
  const target = join(work, 'target')
  const from = lyingSide(outside)
  const err = await copy([{ side: from, path: '/src' }], { side: localSide, path: target }, { recursive: true, preserve: false, progress: null }).then(() => null, (e: unknown) => e)
  t.ok(err instanceof PathError, `a PathError (${String(err)})`)
  t.match(err, { path: 'fake:/src', message: "'a' is listed twice" })
  t.same(readdirSync(outside), [], 'nothing written through a symlink into the directory outside')
  t.notOk(existsSync(join(target, 'a')), 'and nothing made in the target for that name')
})
