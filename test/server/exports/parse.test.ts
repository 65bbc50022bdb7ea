import t from 'tap'
import { fileURLToPath } from 'node:url'
import { ExportsError } from '../../../server/exports/errors.ts'
import { defaultExports, loadExports, parseExports, validateBackends } from '../../../server/exports/parse.ts'

const fixture = fileURLToPath(new URL('../../fixtures/exports/sample.exports', import.meta.url))

const LINUX_DEFAULTS = { rw: false, squash: 'root', anonuid: 65534, anongid: 65534, secure: true, sync: true, crossmnt: false }

function parseError(text: string): ExportsError {
  try {
    parseExports(text, 'exports')
  } catch (err) {
    if (err instanceof ExportsError) return err
    throw err
  }
  throw new Error('expected an ExportsError')
}

t.test('the sample fixture parses into the expected structure', async (t) => {
  const list = await loadExports(fixture)
  t.equal(list.file, fixture)
  t.same(list.exports.map((e) => [e.path, e.line, e.backend, e.fsid]), [
    ['/srv/data', 3, 'local', undefined],
    ['/srv/with space', 4, 'local', undefined],
    ['/srv/mem', 6, 'memory', 7],
    ['/', 7, 'memory', 0],
  ])
  const [data, spaced] = list.exports
  t.strictSame(data?.clients.map((c) => [c.name, c.match, c.line, c.column]), [
    ['10.0.0.0/8', { kind: 'network', address: '10.0.0.0', prefix: 8 }, 3, 13],
    ['*.lab.example', { kind: 'wildcard', pattern: '*.lab.example' }, 3, 44],
    ['*', { kind: 'any' }, 3, 63],
  ])
  t.strictSame(data?.clients[0]?.options, { ...LINUX_DEFAULTS, rw: true, squash: 'none' })
  t.strictSame(data?.clients[2]?.options, { ...LINUX_DEFAULTS, squash: 'all', anonuid: 1000, anongid: 1000 })
  // -rw,insecure are defaults for every client of the line; a client's own options win.
  t.strictSame(spaced?.clients.map((c) => [c.name, c.match, c.options.rw, c.options.secure, c.line]), [
    ['host1.example', { kind: 'hostname', name: 'host1.example' }, true, false, 4],
    ['192.168.1.0/255.255.255.0', { kind: 'network', address: '192.168.1.0', prefix: 24 }, false, false, 4],
    ['fd00::/8', { kind: 'network', address: 'fd00:0:0:0:0:0:0:0', prefix: 8 }, true, true, 5],
  ])
})

t.test('client forms', async (t) => {
  const list = parseExports(
    '/a 1.2.3.4 ::1 ::ffff:10.1.2.3 host?.lab node[1-3] HOST.Example. (rw) 10.1.2.3/16 ::/0 0.0.0.0/0\n',
    'x',
  )
  t.strictSame(list.exports[0]?.clients.map((c) => c.match), [
    { kind: 'address', address: '1.2.3.4' },
    { kind: 'address', address: '0:0:0:0:0:0:0:1' },
    { kind: 'address', address: '10.1.2.3' },
    { kind: 'wildcard', pattern: 'host?.lab' },
    { kind: 'wildcard', pattern: 'node[1-3]' },
    { kind: 'hostname', name: 'host.example' },
    { kind: 'any' },
    { kind: 'network', address: '10.1.0.0', prefix: 16 },
    { kind: 'network', address: '0:0:0:0:0:0:0:0', prefix: 0 },
    { kind: 'network', address: '0.0.0.0', prefix: 0 },
  ])
  t.equal(list.exports[0]?.clients[6]?.name, '*')
  t.equal(list.exports[0]?.clients[6]?.options.rw, true)
})

t.test('a line without clients exports to everyone with its defaults', async (t) => {
  const list = parseExports('/a -rw\n/b\n', 'x')
  t.strictSame(list.exports[0]?.clients, [{ name: '*', match: { kind: 'any' }, options: { ...LINUX_DEFAULTS, rw: true }, line: 1, column: 1 }])
  t.strictSame(list.exports[1]?.clients[0]?.options, LINUX_DEFAULTS)
})

t.test('options: later wins, accepted no-ops, ids, fsid forms', async (t) => {
  const list = parseExports(
    [
      '/a *(rw,ro,no_root_squash,root_squash,all_squash,no_all_squash,insecure,secure,async,crossmnt,nocrossmnt,sync)',
      '/b *(subtree_check,no_subtree_check,wdelay,no_wdelay,hide,nohide,crossmnt,async,no_root_squash)',
      '/c *(anonuid=-2,anongid=4294967295,fsid=12345678-9ABC-def0-1234-56789abcdef0)',
      '/d *(fsid=4294967295) h(fsid=4294967295,backend=memory)',
      '/e *() h(rw)',
    ].join('\n'),
    'x',
  )
  t.strictSame(list.exports[0]?.clients[0]?.options, LINUX_DEFAULTS)
  t.strictSame(list.exports[1]?.clients[0]?.options, { ...LINUX_DEFAULTS, crossmnt: true, sync: false, squash: 'none' })
  t.equal(list.exports[2]?.clients[0]?.options.anonuid, 4294967294)
  t.equal(list.exports[2]?.clients[0]?.options.anongid, 4294967295)
  t.equal(list.exports[2]?.fsid, '123456789abcdef0123456789abcdef0')
  t.equal(list.exports[3]?.fsid, 4294967295)
  t.equal(list.exports[3]?.backend, 'memory')
  t.strictSame(list.exports[4]?.clients[0]?.options, LINUX_DEFAULTS)
})

t.test('paths: quotes, octal escapes, trailing slash, root', async (t) => {
  const list = parseExports('"/a b/"\n/c\\040d/\n/\n"/x"y/z\n', 'x')
  t.same(list.exports.map((e) => e.path), ['/a b', '/c d', '/', '/xy/z'])
})

t.test('comments, blank lines, CRLF and continuations', async (t) => {
  const text = '# head\r\n\r\n  /a  \\\r\n   h1(rw)  \\\n  # not a comment start? it is: a word starting with #\n/b h2 #c\n'
  const list = parseExports(text, 'x')
  t.same(list.exports.map((e) => [e.path, e.line, e.clients.map((c) => c.name)]), [
    ['/a', 3, ['h1']],
    ['/b', 6, ['h2']],
  ])
  t.same(parseExports('', 'x').exports, [])
  t.same(parseExports('# only\n\n', 'x').exports, [])
})

t.test('errors name file, line and column, with stable code', async (t) => {
  const cases: Array<[string, number, number, string]> = [
    ['/a *(rwx)', 1, 6, 'unknown option "rwx"'],
    ['\n\n/srv  h(rw,rwx)', 3, 12, 'unknown option "rwx"'],
    ['/a *(rw,,sync)', 1, 9, 'empty option'],
    ['/a *(frob=1)', 1, 6, 'unknown option "frob=1"'],
    ['/a *(anonuid=x)', 1, 6, 'anonuid needs a number from -2147483648 to 4294967295, got "x"'],
    ['/a *(anongid=4294967296)', 1, 6, 'anongid needs a number from -2147483648 to 4294967295, got "4294967296"'],
    ['/a *(fsid=abc)', 1, 6, 'fsid needs a number, "root" or a UUID, got "abc"'],
    ['/a *(fsid=4294967296)', 1, 6, 'fsid needs a number, "root" or a UUID, got "4294967296"'],
    ['/a *(fsid=1) h(fsid=2)', 1, 16, 'conflicting fsid for this export ("1" and "2")'],
    ['/a *(backend=s3)', 1, 6, 'unknown backend "s3" (known: memory, local, engine, cluster)'],
    ['/a *(backend=engine)', 1, 1, 'backend=engine needs image=/path/to/image (export "/a")'],
    ['/a *(image=/i.img)', 1, 1, 'image=, volume=, disks=, snapdir=, rebuild_rate= and errors= apply only to backend=engine (export "/a")'],
    ['/a *(backend=engine,image=rel.img)', 1, 21, 'image needs an absolute path, got "rel.img"'],
    ['/a *(backend=engine,image=/i,errors=panic)', 1, 30, 'errors needs remount-ro or continue, got "panic"'],
    ['/a *(backend=engine,image=/i,cache=12k)', 1, 30, 'cache needs a size of at least 1M (e.g. 256M), got "12k"'],
    ['/a *(backend=engine,image=/i) h(image=/j)', 1, 33, 'conflicting image for this export ("/i" and "/j")'],
    ['/a *(backend=engine,volume=v)', 1, 1, 'volume=v needs disks=/path/a.img:/path/b.img (its member disks, or globs) (export "/a")'],
    ['/a *(backend=engine,volume=v,disks=/d/a:/d/b,image=/i)', 1, 1, 'volume= and image= exclude each other: the engine serves one image or one volume (export "/a")'],
    ['/a *(backend=engine,disks=/d/a,image=/i)', 1, 1, 'disks= needs volume=NAME (export "/a")'],
    ['/a *(backend=local,volume=v,disks=/d/a)', 1, 1, 'image=, volume=, disks=, snapdir=, rebuild_rate= and errors= apply only to backend=engine (export "/a")'],
    ['/a *(backend=engine,volume=bad/name,disks=/d/a)', 1, 21, 'volume needs a volume name (1 to 64 of A-Z a-z 0-9 . _ -), got "bad/name"'],
    ['/a *(backend=engine,volume=v,disks=/d/a:rel)', 1, 30, 'disks needs absolute paths or globs separated by ":", got "rel"'],
    ['/a *(backend=engine,volume=v,disks=/d/a:)', 1, 30, 'disks needs absolute paths or globs separated by ":", got ""'],
    ['/a *(backend=engine,volume=v,disks=/d/a) h(disks=/d/b)', 1, 44, 'conflicting disks for this export ("/d/a" and "/d/b")'],
    ['/a *(backend=engine,volume=v,disks=/d/a,rebuild_rate=fast)', 1, 41, 'rebuild_rate needs bytes per second (e.g. 50M, 0 for no limit), got "fast"'],
    ['/a *(backend=engine,volume=v,disks=/d/a,rebuild_rate=2T)', 1, 41, 'rebuild_rate needs bytes per second (e.g. 50M, 0 for no limit), got "2T"'],
    ['/a *(backend=engine,image=/i,rebuild_rate=1M)', 1, 1, 'rebuild_rate= needs volume=NAME (an image has no members to rebuild) (export "/a")'],
    ['/a *(backend=local,cache=64M)', 1, 1, 'cache= applies only to backend=engine and backend=cluster (export "/a")'],
    ['/a *(cache=64M)', 1, 1, 'cache= applies only to backend=engine and backend=cluster (export "/a")'],
    ['/a *(backend=local,rebuild_rate=1M)', 1, 1, 'image=, volume=, disks=, snapdir=, rebuild_rate= and errors= apply only to backend=engine (export "/a")'],
    ['/a -rw,bogus h', 1, 8, 'unknown option "bogus"'],
    ['/a *(rw', 1, 7, 'missing ")" after the options of "*(rw"'],
    ['/a *(rw)x)', 1, 8, 'unexpected ")" in options'],
    ['/a host)', 1, 8, 'unexpected ")"'],
    ['/a h -rw', 1, 6, 'default options ("-rw") must come right after the export path'],
    ['/a @group(rw)', 1, 4, 'netgroups are not supported ("@group")'],
    ['/a bad,host', 1, 4, 'invalid client "bad,host"'],
    ['/a h[ab', 1, 4, 'unbalanced [ in client "h[ab"'],
    ['/a h[a[b]]', 1, 4, 'unbalanced [ in client "h[a[b]]"'],
    ['/a 10.0.0.0/33', 1, 4, 'prefix length 33 is too long in "10.0.0.0/33"'],
    ['/a 10.0.0.0/255.0.255.0', 1, 4, 'netmask is not contiguous in "10.0.0.0/255.0.255.0"'],
    ['/a 10.0.0.0/ffff::', 1, 4, 'invalid netmask in "10.0.0.0/ffff::"'],
    ['/a 10.0.0/8', 1, 4, 'invalid network address in "10.0.0/8"'],
    ['a *', 1, 1, 'export path must be absolute, got "a"'],
    ['/a//b *', 1, 1, 'export path "/a//b" has an empty component ("//")'],
    ['/a/../b *', 1, 1, 'export path "/a/../b" must not contain ".."'],
    ['/a/./b *', 1, 1, 'export path "/a/./b" must not contain "."'],
    ['/a\\x *', 1, 1, 'invalid escape in path "/a\\x" (use \\ooo octal)'],
    ['/a\\000 *', 1, 1, 'export path contains a NUL character'],
    [`/${'x'.repeat(1024)} *`, 1, 1, 'export path is longer than 1024 bytes'],
    ['/a *\n  "/b', 2, 3, 'unterminated quote'],
    ['/a "x', 1, 4, 'unterminated quote'],
    ['/a *\n# c\n/a/ h', 3, 1, 'duplicate export "/a" (first at line 1)'],
  ]
  for (const [text, line, column, reason] of cases) {
    const err = parseError(text)
    t.match(err, { code: 'EXPORTS_INVALID', file: 'exports', line, column, reason, name: 'ExportsError' }, text)
    t.equal(err.message, `exports:${line}:${column}: ${reason}`)
  }
})

t.test('loadExports rejects with the fs error for a missing file', async (t) => {
  await t.rejects(loadExports('/nonexistent/tsnfs-exports'), { code: 'ENOENT' })
})

t.test('backend=engine carries its image, errors= and cache= (defaults remount-ro, 256 MiB)', async (t) => {
  const list = parseExports('/e *(rw,backend=engine,image=/var/lib/tsnfs/data.img)\n/f -cache=64M,errors=continue *(backend=engine,image=/dev/sdb)\n', 'exports')
  t.strictSame(list.exports.map((e) => [e.backend, e.engine]), [
    ['engine', { image: '/var/lib/tsnfs/data.img', errors: 'remount-ro', cacheBytes: 256 * 2 ** 20 }],
    ['engine', { image: '/dev/sdb', errors: 'continue', cacheBytes: 64 * 2 ** 20 }],
  ])
})

t.test('backend=engine on a volume: volume= and disks= (split at ":", globs kept for the server to expand)', async (t) => {
  const list = parseExports('/data *(rw,backend=engine,volume=vol1,disks=/d/a.img:/d/b*.img,cache=64M)\n', 'exports')
  t.strictSame(list.exports.map((e) => [e.backend, e.engine]), [
    ['engine', { volume: 'vol1', disks: ['/d/a.img', '/d/b*.img'], errors: 'remount-ro', cacheBytes: 64 * 2 ** 20 }],
  ])
})

t.test('rebuild_rate=: bytes per second with the size suffixes, 0 for no limit', async (t) => {
  const list = parseExports('/a *(rw,backend=engine,volume=v,disks=/d/a,rebuild_rate=50M)\n/b *(rw,backend=engine,volume=w,disks=/d/b,rebuild_rate=0)\n', 'exports')
  t.strictSame(list.exports.map((e) => e.engine?.rebuildRate), [50 * 2 ** 20, 0])
})

t.test('defaultExports: /export, memory backend, rw, insecure, root_squash', async (t) => {
  const list = defaultExports()
  t.equal(list.exports.length, 1)
  t.equal(list.exports[0]?.path, '/export')
  t.equal(list.exports[0]?.backend, 'memory')
  t.strictSame(list.exports[0]?.clients[0]?.options, { ...LINUX_DEFAULTS, rw: true, secure: false })
  t.doesNotThrow(() => { validateBackends(list, new Set(['memory'])) })
})

t.test('validateBackends rejects unavailable backends', async (t) => {
  const list = parseExports('/m *(backend=memory)\n/l *\n', 'exports')
  t.throws(() => { validateBackends(list, new Set(['memory'])) }, {
    code: 'EXPORTS_INVALID',
    line: 2,
    message: 'exports:2:1: backend local is not available yet; use backend=memory (export "/l")',
  })
  t.throws(() => { validateBackends(list, new Set(['local'])) }, {
    message: 'exports:1:1: backend memory is not available (export "/m")',
  })
  t.doesNotThrow(() => { validateBackends(list, new Set(['local', 'memory'])) })
})

t.test('crossmnt must be set for every client of an export or for none, naming the line and column', async (t) => {
  const list = parseExports('/a *(rw)\n/b 10.0.0.0/8(ro) *(rw,crossmnt)\n', 'exports')
  t.throws(() => {
    validateBackends(list, new Set(['memory', 'local']))
  }, { code: 'EXPORTS_INVALID', line: 2, column: 19, message: 'exports:2:19: crossmnt must be set for every client of "/b" or for none' })
  const other = parseExports('/b -crossmnt 10.0.0.0/8(ro) \\\n  *(rw,nocrossmnt)\n', 'exports')
  t.throws(() => {
    validateBackends(other, new Set(['local']))
  }, { line: 2, column: 3, message: /crossmnt must be set for every client of "\/b" or for none/ }, 'a client turning off the line default')
  for (const text of ['/b 10.0.0.0/8(ro,crossmnt) *(rw,crossmnt)\n', '/b -crossmnt 10.0.0.0/8(ro) *(rw)\n', '/b *(crossmnt)\n', '/b 10.0.0.0/8(ro) *(rw)\n']) {
    t.doesNotThrow(() => {
      validateBackends(parseExports(text, 'exports'), new Set(['local']))
    }, text.trim())
  }
})
