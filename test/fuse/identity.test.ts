/*
 * Each caller's identity through `tsnfs mount` (issue 11 point 2): with
 * allow_other, what other users make belongs to them on the server and the
 * server judges them, not the mounting user; their supplementary groups
 * count (the 16 lowest: what AUTH_SYS carries); a mode changed on the
 * server behind the kernel's back denies an open the kernel's stale view
 * would allow; an open file's delayed writes go as its opener; root_squash
 * squashes root only; `-o uid=,gid=` forces one identity; mounts are
 * nosuid,nodev unless asked; fstat after unlink of an open file says 0
 * links. Users are uids 2001-2003 (no passwd entries needed: setpriv).
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, chownSync, lstatSync, mkdirSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { NfsClient } from '../../client/nfs-client.ts'
import { Callers, authSysGroups, procGroups } from '../../client/fuse/callers.ts'
import { AsUser } from '../helpers/as-user.ts'
import type { Identity } from '../helpers/as-user.ts'
import { TEST_OPTS, canFuse, exportDir, mountFlags, mountFuse, mountpointDir, sh } from '../helpers/fuse.ts'
import { startServer } from '../helpers/server.ts'

const skip = canFuse ? false : 'needs root and FUSE'

const ROOT: Identity = { name: 'root', uid: 0, gid: 0, groups: [] }
const OWNER: Identity = { name: 'owner', uid: 2001, gid: 2001, groups: [3000] }
const MEMBER: Identity = { name: 'member', uid: 2002, gid: 2002, groups: [3000] }
const OTHER: Identity = { name: 'other', uid: 2003, gid: 2003, groups: [] }

const owner = (p: string): string => {
  const s = lstatSync(p)
  return `${String(s.uid)}:${String(s.gid)}`
}

const O_NEW = ['O_WRONLY', 'O_CREAT', 'O_EXCL']

t.test("a caller's credential: header uid and gid, groups from /proc, cached per process", async t => {
  t.strictSame(authSysGroups(100, [300, 100, 7, 7, ...Array.from({ length: 20 }, (_, i) => 1000 - i)]), [7, 300, ...Array.from({ length: 14 }, (_, i) => 981 + i)], 'no primary gid, no repeats, the 16 lowest')
  const child = spawn('setpriv', ['--reuid=2001', '--regid=2001', '--groups=30,10,20', 'sleep', '30'], { stdio: 'ignore' })
  t.teardown(() => child.kill())
  await once(child, 'spawn')
  // setpriv execs sleep once it has set the groups: wait for that.
  for (let i = 0; i < 100; i++) {
    if (readFileSync(`/proc/${String(child.pid)}/cmdline`, 'latin1').startsWith('sleep')) break
    await new Promise(r => setTimeout(r, 20))
  }
  t.strictSame(procGroups(child.pid ?? 0), [10, 20, 30], 'the Groups: line of /proc/PID/status')
  t.equal(procGroups(2 ** 22 + 12345), null, 'a process that is gone: null')

  const fx = await startServer(t)
  const client = await NfsClient.mount(fx.url('/export'), { uid: 0, gid: 0 })
  t.teardown(() => client.umount())
  const callers = new Callers(client, { fixed: false })
  const pid = child.pid ?? 0
  const a = callers.of({ uid: 2001, gid: 2001, pid })
  t.strictSame(a.cred, { uid: 2001, gid: 2001, gids: [10, 20, 30] })
  t.equal(a.client.cred, a.cred, "the caller's view calls as it")
  t.equal(callers.of({ uid: 2001, gid: 2001, pid }), a, 'the same process again: cached')
  t.equal(callers.reads, 1, 'one /proc read')
  t.not(callers.of({ uid: 2002, gid: 2001, pid }), a, 'another uid (setuid since): asked again')
  t.equal(callers.of({ uid: 2001, gid: 2001, pid }), a, 'back to the first identity: still cached')
  t.equal(callers.reads, 2, 'no /proc read for it')
  // The cache keeps groups for a second: after that, the same caller is read again (the last-caller shortcut expires with it).
  await sleep(1100)
  t.strictSame(callers.of({ uid: 2001, gid: 2001, pid }).cred, a.cred, 'the same groups')
  t.equal(callers.reads, 3, 'read again once its entry expired')
  t.equal(callers.of({ uid: 0, gid: 0, pid: 0 }), callers.own, "the kernel's own requests: the mount's identity")
  const gone = callers.of({ uid: 2003, gid: 2003, pid: 2 ** 22 + 12345 })
  t.strictSame(gone.cred, { uid: 2003, gid: 2003, gids: [] }, 'a process already gone: its uid and gid alone')
  callers.of({ uid: 2003, gid: 2003, pid: 2 ** 22 + 12345 })
  t.equal(callers.reads, 5, 'and not cached')
  const fixed = new Callers(client, { fixed: true })
  t.equal(fixed.of({ uid: 2001, gid: 2001, pid }), fixed.own, '-o uid=,gid=: every caller is the mount')
  t.strictSame(fixed.own.cred, { uid: 0, gid: 0, gids: [] })
})

t.test('allow_other: every caller acts as itself', { skip }, async t => {
  const base = t.testdir({})
  const ex = await exportDir(t, base)
  chmodSync(ex.dir, 0o777)
  const mnt = mountpointDir(t)
  // Long attribute times: the kernel keeps what it was told for a minute, so its view can go stale.
  await mountFuse(t, ex.source, mnt, `${ex.portOpts},${TEST_OPTS},allow_other,acregmin=60,acregmax=60`)
  const [root, own, member, other] = [ROOT, OWNER, MEMBER, OTHER].map(id => AsUser.start(t, id)) as [AsUser, AsUser, AsUser, AsUser]
  const m = (p: string): string => join(mnt, p)
  const h = (p: string): string => join(ex.dir, p)

  t.test('what each user makes is its own on the server', async t => {
    t.equal(await own.do('open', m('a1'), O_NEW, 0o644), 'OK')
    t.equal(await own.do('mkdir', m('d1'), 0o755), 'OK')
    t.equal(await member.do('open', m('a2'), O_NEW, 0o644), 'OK')
    t.equal(await member.do('symlink', 'a2', m('l2')), 'OK')
    t.equal(await root.do('open', m('r0'), O_NEW, 0o644), 'OK')
    t.strictSame([owner(h('a1')), owner(h('d1')), owner(h('a2')), owner(h('l2')), owner(h('r0'))], ['2001:2001', '2001:2001', '2002:2002', '2002:2002', '0:0'])
    t.equal(await other.do('open', m('a1'), ['O_WRONLY'], 0), 'EACCES', 'a user denied by mode bits is denied')
    t.equal(await other.do('open', m('d1/x'), O_NEW, 0o644), 'EACCES', 'no write permission in d1')
  })

  t.test("a mode changed behind the kernel's back: the server's ACCESS decides the open", async t => {
    t.equal(await other.do('read', m('a1')), 0, 'readable while 0644')
    chmodSync(h('a1'), 0o600)
    const seen = await root.do('stat', m('a1'))
    t.equal(typeof seen === 'object' ? seen.mode : seen, '644', 'the kernel still holds mode 0644 (it would let the open through)')
    t.equal(await other.do('open', m('a1'), ['O_RDONLY'], 0), 'EACCES', 'but the open is refused')
    t.equal(await own.do('read', m('a1')), 0, 'the owner still reads it')
  })

  t.test('supplementary groups count, the 16 lowest of them', async t => {
    mkdirSync(h('g'), 0o770)
    chmodSync(h('g'), 0o770)
    chownSync(h('g'), 2001, 3000)
    t.equal(await member.do('open', m('g/m'), O_NEW, 0o644), 'OK', 'a member of group 3000 creates in a 0770 directory of that group')
    t.equal(owner(h('g/m')), '2002:2002')
    t.equal(await other.do('open', m('g/o'), O_NEW, 0o644), 'EACCES', 'a non-member may not')
    // 20 groups: the kernel sees all, AUTH_SYS carries 4001..4016; a directory of group 4020 is then out of reach on the server.
    const many = AsUser.start(t, { name: 'many', uid: 2004, gid: 2004, groups: Array.from({ length: 20 }, (_, i) => 4001 + i) })
    for (const g of [4016, 4020]) {
      mkdirSync(h(`g${String(g)}`), 0o770)
      chmodSync(h(`g${String(g)}`), 0o770)
      chownSync(h(`g${String(g)}`), 2001, g)
    }
    t.equal(await many.do('open', m('g4016/f'), O_NEW, 0o644), 'OK', 'the 16th lowest group is sent')
    t.equal(await many.do('open', m('g4020/f'), O_NEW, 0o644), 'EACCES', 'the 20th is not (the server never hears of it)')
  })

  t.test("an open file's delayed writes go as its opener", async t => {
    t.equal(await own.do('open', m('own'), O_NEW, 0o600), 'OK')
    t.equal(await own.do('write', m('own'), 'first\n'), 'OK')
    // The owner opens, then becomes uid 2002 (ambient CAP_SETUID) and writes through the inherited descriptor.
    const r = await sh(
      `cd / && setpriv --reuid=2001 --regid=2001 --clear-groups --inh-caps=+setuid,+setgid --ambient-caps=+setuid,+setgid ` +
        `bash -c 'exec 3>>${m('own')}; setpriv --reuid=2002 --regid=2002 --clear-groups --inh-caps=-all bash -c "echo second >&3; exec 3>&-"'`,
    )
    t.equal(r.code, 0, `the write and close through the owner's descriptor succeed ${r.stderr}`)
    t.equal(readFileSync(h('own'), 'utf8'), 'first\nsecond\n', 'and reached the server')
    t.equal(await member.do('read', m('own')), 'EACCES', 'while uid 2002 itself may not open the file')
  })

  t.test('fstat of an open file after unlink: 0 links', async t => {
    t.equal(await own.do('open', m('u'), O_NEW, 0o644), 'OK')
    t.equal(await own.do('hold', 'u', m('u'), ['O_RDWR']), 'OK')
    t.equal(await own.do('unlink', m('u')), 'OK')
    const st = await own.do('fstat', 'u')
    t.equal(typeof st === 'object' ? st.nlink : st, 0, 'nlink 0')
    t.equal(await own.do('open', m('v'), O_NEW, 0o644), 'OK')
    t.equal(await own.do('link', m('v'), m('v2')), 'OK')
    t.equal(await own.do('hold', 'v', m('v'), ['O_RDONLY']), 'OK')
    t.equal(await own.do('unlink', m('v')), 'OK')
    const one = await own.do('fstat', 'v')
    t.equal(typeof one === 'object' ? one.nlink : one, 1, 'one of two names gone: 1')
    t.equal(await own.do('unlink', m('v2')), 'OK')
    const none = await own.do('fstat', 'v')
    t.equal(typeof none === 'object' ? none.nlink : none, 0, 'both gone: 0')
    t.equal(await own.do('release', 'u'), 'OK')
    t.equal(await own.do('release', 'v'), 'OK')
    // RELEASE comes asynchronously after close(2): wait for the hidden names to go.
    for (let i = 0; i < 100 && readdirSync(ex.dir).some(n => n.startsWith('.tsnfs')); i++) await new Promise(r => setTimeout(r, 50))
    t.strictSame(readdirSync(ex.dir).filter(n => n.startsWith('.tsnfs')), [], 'the hidden names are removed at the last close')
  })

  t.test('nosuid,nodev unless asked', async t => {
    const flags = mountFlags(mnt)
    t.ok(flags.includes('nosuid') && flags.includes('nodev'), `/proc/mounts: ${flags.join(',')}`)
    t.ok(flags.includes('allow_other') && flags.includes('default_permissions'))
  })
})

t.test('root_squash: root is squashed, other callers are not', { skip }, async t => {
  const base = t.testdir({})
  const ex = await exportDir(t, base, 'export', 'rw,insecure,root_squash')
  chmodSync(ex.dir, 0o777)
  const mnt = mountpointDir(t)
  await mountFuse(t, ex.source, mnt, `${ex.portOpts},${TEST_OPTS},allow_other`)
  const root = AsUser.start(t, ROOT)
  const own = AsUser.start(t, OWNER)
  t.equal(await root.do('open', join(mnt, 'r'), O_NEW, 0o644), 'OK')
  t.equal(await own.do('open', join(mnt, 'o'), O_NEW, 0o600), 'OK')
  t.equal(owner(join(ex.dir, 'r')), '65534:65534', "root's file belongs to nobody")
  t.equal(owner(join(ex.dir, 'o')), '2001:2001', "the owner's file to the owner")
  t.equal(await own.do('read', join(mnt, 'o')), 0)
  t.equal(await root.do('read', join(mnt, 'o')), 'EACCES', 'root may read anything locally, but the server treats it as nobody')
  t.equal(await root.do('chmod', join(mnt, 'o'), 0o644), 'EPERM', 'nor may it chmod what it does not own')
})

t.test('-o uid=,gid= forces one identity; suid,dev on request', { skip }, async t => {
  const base = t.testdir({})
  const ex = await exportDir(t, base)
  chmodSync(ex.dir, 0o777)
  const mnt = mountpointDir(t)
  await mountFuse(t, ex.source, mnt, `${ex.portOpts},${TEST_OPTS},allow_other,uid=2001,gid=2001,suid,dev,noexec`)
  const root = AsUser.start(t, ROOT)
  const member = AsUser.start(t, MEMBER)
  t.equal(await root.do('open', join(mnt, 'r'), O_NEW, 0o644), 'OK')
  t.equal(await member.do('open', join(mnt, 'm'), O_NEW, 0o644), 'OK')
  t.strictSame([owner(join(ex.dir, 'r')), owner(join(ex.dir, 'm'))], ['2001:2001', '2001:2001'], 'both made as uid 2001')
  const flags = mountFlags(mnt)
  t.ok(!flags.includes('nosuid') && !flags.includes('nodev') && flags.includes('noexec'), `/proc/mounts: ${flags.join(',')}`)
})
