/*
 * tsnfs mount [-f] [-o OPTIONS] SOURCE MOUNTPOINT: the export as a local
 * directory through FUSE (client/fuse). Detached by default: the command
 * starts itself again with --foreground in a new session, and returns once
 * that daemon reports on a pipe (fd 3) that the mount is live, or prints
 * why it failed.
 *
 * A mount point that is already one (of anything), or that another tsnfs
 * daemon is mounting, is refused; a non-empty directory is not (mount(8),
 * mount.nfs and fuse3 mount over one, hiding what it holds).
 *
 * SIGTERM/SIGINT stop the daemon within --stop-timeout seconds: umount
 * (lazily if busy), then the data files held written out and the export
 * unmounted. If the deadline passes first (the server does not answer, or
 * files stay open on a lazily detached mount), the FUSE connection is
 * aborted (calls still waiting fail), and the daemon exits: 1, reporting
 * loudly what could not be written, if data was lost, else 0. A second
 * signal does that at once.
 */
import { spawn } from 'node:child_process'
import { closeSync, fstatSync, statSync, writeFileSync, writeSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { pino } from 'pino'
import type { Logger } from 'pino'
import { NfsClient } from '../client/index.ts'
import { FuseMount, abortConnection } from '../client/fuse/mount.ts'
import { mountAt } from '../client/fuse/mountinfo.ts'
import { MountOptionError, parseMountOptions, sourceUrl } from '../client/fuse/options.ts'
import { messageOf, parseCommand, UsageError } from './common.ts'
import { wantsHelp } from './help.ts'
import { claimMountpoint, daemonOf } from './mount-registry.ts'
import { locate } from './mountpoint.ts'
import { withMallocEnv } from './malloc-env.ts'

export const MOUNT_USAGE = `usage: tsnfs mount [-f] [-o OPTIONS] SOURCE MOUNTPOINT
  mount an NFSv3 export on a local directory through FUSE (as root)
  SOURCE      host:/export[/path] or nfs://host/export[/path]?options
  -f, --foreground      stay in the foreground (default: detach once mounted)
  -o OPTIONS  comma list: ro, allow_other, rsize=N, wsize=N, actimeo=S, acregmin=S, acregmax=S,
              acdirmin=S, acdirmax=S, noac, port=N, mountport=N, proto=tcp|udp, uid=N, gid=N,
              hard (default), soft, timeo=DECISECONDS, retrans=N, lookupcache=all|positive|none,
              suid, dev (default nosuid,nodev), noexec, blockcache=SIZE (32M), dirtylimit=SIZE (64M),
              idletrim=S (30; 0 off)
              locks: lock (default: fcntl and flock locks go to the server's NLM), nolock (kept in
              the kernel), local_lock=none|all|flock|posix, clientaddr=ADDR (the local address to
              call from and be called back at), callername=NAME (default the host name),
              lockport=N, lockportmapport=N, lockaddr=ADDR, nlmport=N, lockstatedir=DIR
              each caller acts on the server as itself (uid, gid, groups); uid=/gid= make every
              caller act as that one identity (a single-user mount)
  --stop-timeout S      after SIGTERM/SIGINT, exit within S seconds (default 15): data the server
                        has not acknowledged by then is reported lost
  --log-level LEVEL     daemon log level (default warn); logs go to stderr (--log-file FILE when detached);
                        at info, SIGUSR2 to the daemon logs its FUSE requests so far by operation
  A MOUNTPOINT that is already a mount point, or that another tsnfs daemon is mounting, is refused.
`

const READY_ENV = 'TSNFS_READY_FD'
const DEFAULT_STOP_TIMEOUT_S = 15
/** UMNT only updates the server's mount list (RFC 1813 §5.2.3): never worth waiting long for. */
const UMNT_BOUND_MS = 3000

/** Tell the parent (detached mode) how mounting went, once. */
function report(line: string): void {
  const fd = Number(process.env[READY_ENV])
  if (!Number.isInteger(fd) || fd < 3) return
  process.env.TSNFS_READY_FD = ''
  try {
    writeSync(fd, `${line}\n`)
    closeSync(fd)
  } catch {
    // the parent is gone
  }
}

interface MountArgs {
  source: string
  mountpoint: string
  o: string[]
  logLevel: string
  logFile: string | undefined
  stopTimeoutS: number
}

/** The daemon's command line: the canonical mount point, so ps and tsnfs umount see the real path. */
function daemonArgv(a: MountArgs): string[] {
  return [
    'mount', '--foreground', ...a.o.flatMap(o => ['-o', o]), '--log-level', a.logLevel,
    ...(a.logFile === undefined ? [] : ['--log-file', a.logFile]), '--stop-timeout', String(a.stopTimeoutS), a.source, a.mountpoint,
  ]
}

function detach(a: MountArgs): Promise<number> {
  const script = process.argv[1] ?? ''
  const child = spawn(process.execPath, [...process.execArgv, script, ...daemonArgv(a)], {
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
    env: withMallocEnv({ ...process.env, [READY_ENV]: '3' }),
  })
  const pipe = child.stdio[3]
  return new Promise(resolve => {
    let text = ''
    pipe?.on('data', (d: Buffer) => (text += d.toString()))
    const done = (): void => {
      const line = text.trim()
      child.unref()
      pipe?.destroy()
      if (line.startsWith('ready')) {
        resolve(0)
        return
      }
      process.stderr.write(`tsnfs mount: ${line === '' ? 'the mount daemon exited before mounting' : line.replace(/^error: /, '')}\n`)
      resolve(1)
    }
    pipe?.on('end', done)
    child.on('error', err => {
      text = `error: ${err.message}`
      done()
    })
  })
}

/** Why `mountpoint` cannot take a new mount, or null (it must not be a mount point, nor claimed by a live daemon). */
function refusal(mountpoint: string): string | null {
  const there = mountAt(mountpoint)
  if (there !== null) return `${mountpoint}: already a mount point (${there.fstype} ${there.source}); unmount it first`
  const d = daemonOf(mountpoint)
  if (d !== null) return `${mountpoint}: another tsnfs mount daemon (pid ${String(d.pid)}, ${d.source}) serves or is mounting it`
  return null
}

/** Whether stderr goes nowhere (a detached daemon without --log-file): then losses also go to the kernel log. */
function stderrIsNull(): boolean {
  try {
    const err = fstatSync(2)
    const devnull = statSync('/dev/null')
    return err.isCharacterDevice() && err.rdev === devnull.rdev
  } catch {
    return false
  }
}

/** An error nobody may miss: the log, stderr, and the kernel log (dmesg, the journal) when stderr goes nowhere. */
function loud(log: Logger, fields: object, msg: string): void {
  log.fatal(fields, msg)
  process.stderr.write(`tsnfs mount: ${msg}\n`)
  if (stderrIsNull()) {
    try {
      writeFileSync('/dev/kmsg', `<3>tsnfs-mount[${String(process.pid)}]: ${msg}\n`)
    } catch {
      // not root, or no kernel log
    }
  }
}

async function serveMount(a: MountArgs): Promise<number> {
  const { source, mountpoint } = a
  const log = pino({ level: a.logLevel }, a.logFile === undefined ? pino.destination(2) : pino.destination({ dest: a.logFile, mkdir: true, append: true, sync: true }))
  const opts = parseMountOptions(a.o)
  const claim = claimMountpoint(mountpoint, source)
  process.once('exit', () => {
    claim.release()
  })
  // Checked again now that the point is ours: another mount may have arrived since the command looked.
  const there = mountAt(mountpoint)
  if (there !== null) throw new UsageError(`${mountpoint}: already a mount point (${there.fstype} ${there.source}); unmount it first`)
  if (!statSync(mountpoint).isDirectory()) throw new UsageError(`${mountpoint}: not a directory`)
  // The daemon's log gets the hard mount's "server not responding" and "OK" lines.
  const client = await NfsClient.mount(sourceUrl(source), { ...opts.client, log })
  let m: FuseMount
  try {
    const root = await client.resolve(client.path)
    m = await FuseMount.mount(client, root.fh, { source, mountpoint, allowOther: opts.allowOther, readOnly: opts.readOnly, suid: opts.suid, dev: opts.dev, exec: opts.exec, fixedIdentity: opts.fixedIdentity, localLock: opts.localLock, log })
  } catch (err) {
    await client.umount().catch(() => undefined)
    throw err
  }
  if (m.dev !== null) claim.update({ dev: m.dev })
  let ended = false
  let signalled = false
  let giving = false
  const held = (): number => m.client.files.writeback.held

  /** The deadline passed, or a second signal: end the connection; exit 1 saying what is lost, else 0. */
  const giveUp = async (why: string): Promise<void> => {
    if (giving) return
    giving = true
    if (!ended) {
      const aborted = m.dev !== null && (await abortConnection(m.dev))
      if (aborted) await Promise.race([m.ended, sleep(2000)])
      else {
        loud(log, { mountpoint }, `${mountpoint}: cannot abort the FUSE connection (no fusectl); killing the daemon`)
        process.kill(process.pid, 'SIGKILL')
      }
    }
    const bytes = held()
    if (bytes > 0) {
      loud(log, { mountpoint, bytes, why }, `${mountpoint}: stopped (${why}) with ${String(bytes)} bytes written through the mount that the server never acknowledged: they are lost`)
      process.exit(1)
    }
    log.warn({ mountpoint, why }, 'stopped with the connection aborted (calls still waiting got an error); nothing written was lost')
    process.exit(0)
  }

  const onSignal = (sig: string): void => {
    if (signalled) {
      void giveUp(`second ${sig}`)
      return
    }
    signalled = true
    log.info({ sig, stopTimeoutS: a.stopTimeoutS }, 'unmounting')
    setTimeout(() => void giveUp(`${sig}, then ${String(a.stopTimeoutS)} s`), a.stopTimeoutS * 1000).unref()
    if (ended) return
    m.unmount().catch(async (err: unknown) => {
      log.warn({ err: messageOf(err) }, 'umount failed (busy?): detaching lazily; open files are served until they close or the stop timeout')
      await m.unmount({ lazy: true }).catch((e: unknown) => {
        log.error({ err: messageOf(e) }, 'lazy umount failed')
      })
    })
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  // The counts so far, on demand: bench/tree.ts --requests reads them around each command it times.
  process.on('SIGUSR2', () => { log.info({ requests: m.session.counts, requestMicros: m.session.micros }, 'request counts') })
  report(`ready ${String(process.pid)}`)
  const end = await m.ended
  ended = true
  log.info({ why: end, requests: m.session.counts, requestMicros: m.session.micros }, 'connection ended')
  try {
    await m.files.closeAll()
  } catch (err) {
    log.error({ err }, 'writing out at unmount failed')
    return 1
  }
  // Whatever the client still holds is written by umount() before its UMNT; only the UMNT is bounded.
  const done = m.client.umount().then(() => 0, (err: unknown) => {
    log.error({ err }, 'writing out at unmount failed')
    return 1
  })
  return Promise.race([done, sleep(UMNT_BOUND_MS).then(() => (held() === 0 ? 0 : done))])
}

export async function mount(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    process.stdout.write(MOUNT_USAGE)
    return 0
  }
  let positionals: string[]
  let values: { foreground?: boolean; o?: string[]; 'log-level'?: string; 'log-file'?: string; 'stop-timeout'?: string }
  try {
    ;({ values, positionals } = parseCommand(argv, {
      foreground: { type: 'boolean', short: 'f' },
      o: { type: 'string', short: 'o', multiple: true },
      'log-level': { type: 'string' },
      'log-file': { type: 'string' },
      'stop-timeout': { type: 'string' },
    }))
    if (positionals.length !== 2) throw new UsageError('expected SOURCE and MOUNTPOINT')
    if (values['stop-timeout'] !== undefined && !/^\d+(\.\d+)?$/.test(values['stop-timeout'])) throw new UsageError('--stop-timeout needs a number of seconds')
    parseMountOptions(values.o ?? [])
  } catch (err) {
    if (!(err instanceof UsageError || err instanceof MountOptionError)) throw err
    process.stderr.write(`tsnfs mount: ${err.message}\n${MOUNT_USAGE}`)
    return 2
  }
  const [source = '', target = ''] = positionals
  const fail = (msg: string): number => {
    report(`error: ${msg}`)
    process.stderr.write(`tsnfs mount: ${msg}\n`)
    return 1
  }
  // Found from the mount table, never by stat of what may be a mount (one whose server is gone hangs).
  let mountpoint: string
  try {
    mountpoint = locate(target).path
    const why = refusal(mountpoint)
    if (why !== null) return fail(why)
    if (!statSync(mountpoint).isDirectory()) return fail(`${mountpoint}: not a directory`)
  } catch (err) {
    return fail(`${target}: ${messageOf(err)}`)
  }
  const a: MountArgs = {
    source,
    mountpoint,
    o: values.o ?? [],
    logLevel: values['log-level'] ?? 'warn',
    logFile: values['log-file'],
    stopTimeoutS: Number(values['stop-timeout'] ?? DEFAULT_STOP_TIMEOUT_S),
  }
  if (values.foreground !== true) return detach(a)
  let code: number
  try {
    code = await serveMount(a)
  } catch (err) {
    code = fail(messageOf(err))
  }
  // The connection is over (or never began): nothing can hang on /dev/fuse now.
  process.exit(code)
}
