import t from 'tap'
import { squash, type RpcCredentials } from '../../../server/exports/squash.ts'
import type { Credentials } from '../../../server/rpc/auth.ts'

const anon = { anonuid: 65534, anongid: 65533 }
const root = { flavor: 'sys', uid: 0, gid: 0, gids: [0, 10, 0, 20], machinename: 'h' } satisfies RpcCredentials
const user: RpcCredentials = { flavor: 'sys', uid: 1000, gid: 100, gids: [100, 0, 27], machinename: 'h' }

t.test('AUTH_NONE becomes anonuid/anongid with no groups, in every mode', async (t) => {
  for (const mode of ['root', 'all', 'none'] as const) {
    t.strictSame(squash({ flavor: 'none' }, { squash: mode, ...anon }), { uid: 65534, gid: 65533, gids: [] }, mode)
  }
})

t.test('all_squash maps everyone to anon and drops groups', async (t) => {
  t.strictSame(squash(root, { squash: 'all', ...anon }), { uid: 65534, gid: 65533, gids: [] })
  t.strictSame(squash(user, { squash: 'all', anonuid: 7, anongid: 8 }), { uid: 7, gid: 8, gids: [] })
})

t.test('root_squash maps uid 0, gid 0 and every supplementary gid 0', async (t) => {
  t.strictSame(squash(root, { squash: 'root', ...anon }), { uid: 65534, gid: 65533, gids: [65533, 10, 65533, 20] })
  // A non-root user keeps its uid and gid but loses supplementary group 0.
  t.strictSame(squash(user, { squash: 'root', ...anon }), { uid: 1000, gid: 100, gids: [100, 65533, 27] })
  t.strictSame(squash({ flavor: 'sys', uid: 5, gid: 0, gids: [], machinename: '' }, { squash: 'root', ...anon }), {
    uid: 5,
    gid: 65533,
    gids: [],
  })
})

t.test('no_root_squash leaves credentials unchanged (and copies the group list)', async (t) => {
  const id = squash(root, { squash: 'none', ...anon })
  t.strictSame(id, { uid: 0, gid: 0, gids: [0, 10, 0, 20] })
  id.gids.push(99)
  t.equal(root.gids.length, 4)
})

t.test('uid/gid (u32)-1 is never used as an identity', async (t) => {
  const odd: RpcCredentials = { flavor: 'sys', uid: 0xffffffff, gid: 0xffffffff, gids: [], machinename: '' }
  t.strictSame(squash(odd, { squash: 'none', ...anon }), { uid: 65534, gid: 65533, gids: [] })
  t.strictSame(squash(odd, { squash: 'root', ...anon }), { uid: 65534, gid: 65533, gids: [] })
})

t.test('accepts the RPC layer credentials type as is', async (t) => {
  const cred: Credentials = { flavor: 'sys', uid: 0, gid: 5, gids: [0], machinename: 'm' }
  t.strictSame(squash(cred, { squash: 'root', ...anon }), { uid: 65534, gid: 5, gids: [65533] })
})
