/*
 * Ownership and permission conformance through the mount, in the spirit of
 * pjdfstest (not installable here): the same calls, as root, a file's
 * owner, a member of its group and another user, on a local directory
 * (the kernel's own behaviour is the reference) and through an allow_other
 * mount of a local export; every answer (OK or the errno) and the owner,
 * group, mode and size each call leaves must be the same. Covered: open
 * for read, write, both and with O_TRUNC, truncate, utimensat with times
 * and with "now", chmod, chown and chgrp, create, mkdir, unlink, rmdir,
 * rename, link, symlink, readdir and lookups in directories of every kind
 * (searchable only, group-writable, sticky, setgid), and the mode bits the
 * kernel clears (setgid on chmod by a non-member, setuid on chown and on
 * write, an open-for-write file truncated after its mode forbids writes).
 * Each call gets fresh objects, made beforehand on the host directory
 * (the export's, or the local one), and what a call leaves is read there
 * too: the server's truth, not the kernel's cached view.
 */
import t from 'tap'
import { chmodSync, chownSync, closeSync, lstatSync, mkdirSync, openSync } from 'node:fs'
import { join } from 'node:path'
import { AsUser } from '../helpers/as-user.ts'
import type { Answer, Identity } from '../helpers/as-user.ts'
import { TEST_OPTS, canFuse, exportDir, mountFuse, mountpointDir } from '../helpers/fuse.ts'

const skip = canFuse ? false : 'needs root and FUSE'

const IDS: readonly Identity[] = [
  { name: 'root', uid: 0, gid: 0, groups: [] },
  { name: 'owner', uid: 2001, gid: 2001, groups: [3000] },
  { name: 'member', uid: 2002, gid: 2002, groups: [3000] },
  { name: 'other', uid: 2003, gid: 2003, groups: [] },
]
type Who = 'root' | 'owner' | 'member' | 'other'
const WHO: readonly Who[] = ['root', 'owner', 'member', 'other']

/** One call; a path is '@' and its place under the tree's root. `check` calls are the ones counted; 'host' ones run here, on the host directory. */
interface Step {
  who: Who | 'host'
  op: string
  args: (string | number | string[])[]
  label: string
  check: boolean
}

const NEW = ['O_WRONLY', 'O_CREAT', 'O_EXCL']
const oct = (n: number): string => n.toString(8).padStart(4, '0')

function plan(): Step[] {
  const steps: Step[] = []
  const setup = (op: string, ...args: Step['args']): void => {
    steps.push({ who: 'host', op, args, label: `setup ${op} ${String(args[0])}`, check: false })
  }
  const check = (who: Who, label: string, op: string, ...args: Step['args']): void => {
    steps.push({ who, op, args, label: `${label}: ${who} ${op}`, check: true })
  }
  const file = (p: string, mode: number, uid: number, gid: number): void => {
    setup('open', p, NEW, 0o600)
    setup('chown', p, uid, gid)
    setup('chmod', p, mode)
  }
  const dir = (p: string, mode: number, uid: number, gid: number): void => {
    setup('mkdir', p, 0o700)
    setup('chown', p, uid, gid)
    setup('chmod', p, mode)
  }
  const after = (label: string, p: string): void => {
    steps.push({ who: 'host', op: 'stat', args: [p], label: `${label}, then stat`, check: true })
  }
  let n = 0

  // Files owned by owner:3000 in an open directory, one fresh file per call.
  dir('@A', 0o777, 0, 0)
  const fileOps: [string, string, Step['args']][] = [
    ['open r', 'open', [['O_RDONLY'], 0]],
    ['open w', 'open', [['O_WRONLY'], 0]],
    ['open rw', 'open', [['O_RDWR'], 0]],
    ['open w trunc', 'open', [['O_WRONLY', 'O_TRUNC'], 0]],
    ['truncate', 'truncate', [3]],
    ['utimes now', 'touch', []],
    ['utimes set', 'utimes', [1000, 2000]],
    ['chmod', 'chmod', [0o640]],
    ['chgrp 3000', 'chown', [-1, 3000]],
    ['chgrp 3001', 'chown', [-1, 3001]],
    ['chown 2003', 'chown', [2003, -1]],
    ['read', 'read', []],
  ]
  for (const mode of [0o644, 0o640, 0o604, 0o600, 0o660, 0o000]) {
    for (const who of WHO) {
      for (const [label, op, args] of fileOps) {
        const p = `@A/f${String(++n)}`
        file(p, mode, 2001, 3000)
        const what = `file ${oct(mode)} ${label}`
        check(who, what, op, p, ...args)
        after(what, p)
      }
    }
  }

  // Directories owned by owner:3000 holding a file and an empty directory of member's, one fresh directory per call.
  const dirOps: [string, (d: string) => [string, Step['args'], string | null]][] = [
    ['create', d => ['open', [`${d}/new`, NEW, 0o644], `${d}/new`]],
    ['mkdir', d => ['mkdir', [`${d}/sub`, 0o755], `${d}/sub`]],
    ['unlink', d => ['unlink', [`${d}/victim`], null]],
    ['rename', d => ['rename', [`${d}/victim`, `${d}/moved`], null]],
    ['symlink', d => ['symlink', ['x', `${d}/sl`], `${d}/sl`]],
    ['link', d => ['link', [`${d}/victim`, `${d}/hl`], `${d}/victim`]],
    ['rmdir', d => ['rmdir', [`${d}/empty`], null]],
    ['readdir', d => ['readdir', [d], null]],
    ['lookup', d => ['stat', [`${d}/victim`], null]],
    ['read in', d => ['read', [`${d}/victim`], null]],
  ]
  for (const mode of [0o755, 0o775, 0o777, 0o770, 0o711, 0o1777, 0o2775, 0o3777]) {
    for (const who of WHO) {
      for (const [label, make] of dirOps) {
        const d = `@D${String(++n)}`
        dir(d, mode, 2001, 3000)
        file(`${d}/victim`, 0o644, 2002, 3000)
        dir(`${d}/empty`, 0o755, 2002, 3000)
        const [op, args, made] = make(d)
        const what = `dir ${oct(mode)} ${label}`
        check(who, what, op, ...args)
        if (made !== null) after(what, made)
      }
    }
  }

  // Mode bits the kernel clears, and a truncate allowed by the descriptor, not by the mode.
  for (const who of WHO) {
    let p = `@A/s${String(++n)}`
    file(p, 0o644, 2001, 3001)
    check(who, 'chmod g+s, file of a group the owner is not in', 'chmod', p, 0o2755)
    after('chmod g+s', p)
    p = `@A/s${String(++n)}`
    file(p, 0o6755, 2001, 3000)
    check(who, 'chgrp of a setuid file', 'chown', p, -1, 3000)
    after('chgrp of a setuid file', p)
    p = `@A/s${String(++n)}`
    file(p, 0o4777, 2001, 3000)
    check(who, 'write to a setuid file', 'write', p, 'x')
    after('write to a setuid file', p)
    p = `@A/s${String(++n)}`
    file(p, 0o6777, 2001, 3000)
    check(who, 'truncate a setuid file', 'truncate', p, 5)
    after('truncate a setuid file', p)
    p = `@A/s${String(++n)}`
    file(p, 0o2777, 2001, 3000)
    check(who, 'write to a setgid group-executable file', 'write', p, 'x')
    after('write to a setgid file', p)
    p = `@A/s${String(++n)}`
    check(who, 'create 0444 for writing, then ftruncate', 'ftruncate', p, ['O_RDWR', 'O_CREAT', 'O_EXCL'], 0o444, 10)
    after('create 0444 then ftruncate', p)
    check(who, 'open O_TRUNC of that 0444 file', 'open', p, ['O_WRONLY', 'O_TRUNC'], 0)
  }
  return steps
}

/** What the host directory says of p (as the workers' stat). */
function hostStat(p: string): Answer {
  try {
    const s = lstatSync(p)
    return { uid: s.uid, gid: s.gid, mode: (s.mode & 0o7777).toString(8), nlink: s.nlink, size: s.size }
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? 'E?'
  }
}

/** A setup call or a stat, done here on the host directory. */
function onHost(op: string, args: (string | number | string[])[]): Answer {
  const [p, a, b] = args as [string, number, number]
  if (op === 'stat') return hostStat(p)
  if (op === 'open') closeSync(openSync(p, 'wx', 0o600))
  else if (op === 'mkdir') mkdirSync(p, 0o700)
  else if (op === 'chown') chownSync(p, a, b)
  else if (op === 'chmod') chmodSync(p, a)
  else throw new Error(`no host op ${op}`)
  return 'OK'
}

/** Run the plan on one tree (root: as the workers see it; host: the directory behind it); the answers in order. */
async function runOn(root: string, host: string, steps: readonly Step[], workers: ReadonlyMap<Who, AsUser>): Promise<Answer[]> {
  const out: Answer[] = []
  for (const s of steps) {
    const base = s.who === 'host' ? host : root
    const args = s.args.map(a => (typeof a === 'string' && a.startsWith('@') ? join(base, a.slice(1)) : a))
    if (s.who === 'host') {
      out.push(onHost(s.op, args))
      continue
    }
    const w = workers.get(s.who)
    if (w === undefined) throw new Error(`no worker for ${s.who}`)
    out.push(await w.do(s.op, ...args))
  }
  return out
}

t.test('ownership and permissions: the mount answers as the kernel does on a local directory', { skip }, async t => {
  const base = t.testdir({})
  const local = join(base, 'local')
  mkdirSync(local)
  chmodSync(local, 0o777)
  const ex = await exportDir(t, base)
  chmodSync(ex.dir, 0o777)
  const mnt = mountpointDir(t)
  await mountFuse(t, ex.source, mnt, `${ex.portOpts},${TEST_OPTS},allow_other`)
  const workers = new Map(IDS.map(id => [id.name as Who, AsUser.start(t, id)]))
  const steps = plan()
  const want = await runOn(local, local, steps, workers)
  const got = await runOn(mnt, ex.dir, steps, workers)
  const differ: string[] = []
  let checks = 0
  let same = 0
  steps.forEach((s, i) => {
    const a = JSON.stringify(want[i])
    const b = JSON.stringify(got[i])
    if (s.check) {
      checks++
      if (a === b) same++
    }
    if (a !== b) differ.push(`${s.label} ${JSON.stringify(s.args)}: local ${a}, mount ${b}`)
  })
  t.comment(`${String(same)} of ${String(checks)} checks answer as the local directory does (${String(steps.length)} calls in all)`)
  t.strictSame(differ, [], 'no call answers differently')
})
