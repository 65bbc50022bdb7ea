import { chmodSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { NdmpAuthFileError, loadNdmpAuth, parseNdmpAuth } from '../../../server/ndmp/auth-file.ts'

/* The NDMP credentials file: user:password lines; a bad line fails with its line number. */

t.test('comments, blank lines, CRLF, and passwords holding colons', async (t) => {
  const users = parseNdmpAuth('# NDMP users\n\nbackup:s3cret\r\n  # indented comment\nops:a:b:c\n', 'auth')
  t.same([...users], [['backup', 's3cret'], ['ops', 'a:b:c']])
})

t.test('each malformed line names its file and line', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['ok:pw\nno colon here\n', /^auth:2: expected user:password$/],
    ['ok:pw\n\n:pw\n', /^auth:3: the user name is empty/],
    ['two words:pw\n', /^auth:1: the user name is empty or holds white space$/],
    ['user:\n', /^auth:1: the password of user is empty$/],
    ['a:1\na:2\n', /^auth:2: a appears twice$/],
    ['# only comments\n\n', /^auth: no user:password line$/],
    [`u:${'x'.repeat(2000)}\n`, /^auth:1: longer than 1024 characters$/],
  ]
  for (const [text, message] of cases) {
    const err = ((): unknown => {
      try {
        parseNdmpAuth(text, 'auth')
        return null
      } catch (e) {
        return e
      }
    })()
    t.ok(err instanceof NdmpAuthFileError, `${JSON.stringify(text.slice(0, 20))}: NdmpAuthFileError`)
    if (err instanceof NdmpAuthFileError) {
      t.equal(err.code, 'NDMP_AUTH_FILE')
      t.match(err.message, message)
    }
  }
})

t.test('loading: a missing or unreadable file fails with its path', async (t) => {
  const dir = t.testdir({ good: 'u:p\n', locked: 'u:p\n' })
  t.same([...loadNdmpAuth(join(dir, 'good'))], [['u', 'p']])
  t.throws(() => loadNdmpAuth(join(dir, 'missing')), { code: 'NDMP_AUTH_FILE', message: /missing: cannot read: ENOENT/ })
  if (process.getuid?.() !== 0) {
    chmodSync(join(dir, 'locked'), 0)
    t.throws(() => loadNdmpAuth(join(dir, 'locked')), { code: 'NDMP_AUTH_FILE', message: /cannot read: EACCES/ })
  }
})
