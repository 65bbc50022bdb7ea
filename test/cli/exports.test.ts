/*
 * tsnfs exports --check: what serve would refuse is refused here, with the
 * same file:line:column message, and nothing is served.
 */
import t from 'tap'
import { join } from 'node:path'
import { writeFile } from 'node:fs/promises'
import { tsnfs } from './cli.ts'

t.test('a valid list: OK with the number of exports, exit 0', async (t) => {
  const dir = t.testdir({
    one: '/export *(rw,insecure,backend=memory)\n',
    many: '# comment\n/a *(ro,backend=memory)\n/b 10.0.0.0/8(rw,no_root_squash,backend=memory) \\\n   *.lab.test(ro,backend=memory)\n/c -ro,backend=memory host.example\n',
  })
  const one = await tsnfs(['exports', '--check', join(dir, 'one')])
  t.same([one.code, one.stdout, one.stderr], [0, `${join(dir, 'one')}: OK (1 export)\n`, ''])
  const many = await tsnfs(['exports', '--check', join(dir, 'many')])
  t.same([many.code, many.stdout], [0, `${join(dir, 'many')}: OK (3 exports)\n`])
})

t.test('invalid lists: the first error with file:line:column, exit 1', async (t) => {
  const dir = t.testdir({})
  const cases: [string, string, RegExp][] = [
    ['option', '/ok *(rw,backend=memory)\n/bad *(rw,bogus,backend=memory)\n', /:2:11: unknown option "bogus"/],
    ['duplicate', '/a *(backend=memory)\n/a 10.0.0.1(backend=memory)\n', /:2:1: duplicate export "\/a" \(first at line 1\)/],
    ['relative', 'export *(backend=memory)\n', /:1:1: export path must be absolute/],
    ['fsid clash', '/a *(fsid=7,backend=memory)\n/b *(fsid=7,backend=memory)\n', /:2:1: export id 7 of "\/b" is also the id of "\/a"/],
  ]
  for (const [name, text, message] of cases) {
    const file = join(dir, name.replace(/ /g, '-'))
    await writeFile(file, text)
    const r = await tsnfs(['exports', '--check', file])
    t.equal(r.code, 1, `${name}: exit 1`)
    t.equal(r.stdout, '', `${name}: nothing on stdout`)
    t.ok(r.stderr.startsWith(`${file}:`), `${name}: the message starts with the file name`)
    t.match(r.stderr, message, name)
  }
  const missing = await tsnfs(['exports', '--check', join(dir, 'nope')])
  t.equal(missing.code, 1)
  t.match(missing.stderr, /nope: ENOENT/)
})

t.test('the example shipped in deploy/ is valid', async (t) => {
  // Its /srv/nfs directories are the operator's to make: check what can be checked anywhere.
  const r = await tsnfs(['exports', '--check', '--syntax-only', 'deploy/exports.example'])
  t.same([r.code, r.stdout], [0, 'deploy/exports.example: OK (7 exports)\n'])
})

t.test('usage errors exit 2', async (t) => {
  const r = await tsnfs(['exports', 'somefile'])
  t.equal(r.code, 2, 'without --check')
  t.match(r.stderr, /usage: tsnfs exports --check \[--syntax-only\] FILE/)
})

t.test('local exports: the directory must exist and be a directory, as serve requires', async (t) => {
  const dir = t.testdir({ real: {}, file: 'x' })
  const text = `/m *(rw,backend=memory)\n${join(dir, 'real')} *(rw)\n${join(dir, 'gone')} *(rw)\n\n${join(dir, 'file')} *(ro)\n`
  const list = join(dir, 'list')
  await writeFile(list, text)
  const r = await tsnfs(['exports', '--check', list])
  t.equal(r.code, 1, 'exit 1')
  t.equal(r.stdout, '', 'nothing on stdout')
  t.strictSame(r.stderr.trim().split('\n'), [
    `${list}:3:1: export "${join(dir, 'gone')}": no such directory`,
    `${list}:5:1: export "${join(dir, 'file')}": not a directory`,
  ], 'every export serve would refuse, each with its line')
  await writeFile(list, `/m *(rw,backend=memory)\n${join(dir, 'real')} *(rw)\n`)
  const ok = await tsnfs(['exports', '--check', list])
  t.same([ok.code, ok.stdout], [0, `${list}: OK (2 exports)\n`], 'an existing directory passes')
})
