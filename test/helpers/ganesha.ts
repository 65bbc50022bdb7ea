/*
 * NFS-Ganesha (Debian packages nfs-ganesha + nfs-ganesha-vfs, and rpcbind)
 * as an independent NFSv3 server for client tests: FSAL_VFS exporting a
 * host directory, NFSv3 over TCP only, on 127.0.0.1 and two free ports.
 * The configuration is written here for each start (config() below); it
 * matches bench/ganesha/ganesha-vfs.conf but for the ports and paths.
 * Needs root.
 *
 * Ganesha 4.3 exits ("Cannot register NFS V3 on TCP") without a portmapper,
 * so rpcbind is started when none answers on 111. `rpcbind -h 127.0.0.1`
 * crashes on Debian 12, so it listens on the wildcard address; clients never
 * use it (URLs carry nfsport/mountport).
 * Start-up problems throw with the reason and the log's tail: a test that
 * needs Ganesha fails, it does not skip.
 *
 * With `nlm: true` Ganesha also serves its lock manager (NLM v4) on a third
 * free port, over UDP as well (rpc.statd calls it back over UDP when a
 * client restarts). Its NLM monitors every client through the host's status
 * monitor (SM_MON to rpc.statd, found through rpcbind, each time it starts
 * watching a client) and denies locks with NLM4_DENIED_NOLOCKS when none
 * answers, so rpc.statd (Debian's nfs-common) is started too when none runs.
 * There is one rpcbind and one rpc.statd for the host while tap runs test
 * files in parallel: both are shared between test processes and stopped
 * only once none uses them (test/helpers/shared-daemon.ts).
 */
import type { Test } from 'tap'
import { execFile, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, openSync, closeSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { NfsClient } from '../../client/nfs-client.ts'
import { freePort } from './ports.ts'
import { useSharedDaemon } from './shared-daemon.ts'

const GANESHA_BINARIES = ['/usr/bin/ganesha.nfsd', '/usr/sbin/ganesha.nfsd']
const RPCBIND_BINARIES = ['/usr/sbin/rpcbind', '/sbin/rpcbind', '/usr/bin/rpcbind']
const STATD_BINARIES = ['/usr/sbin/rpc.statd', '/sbin/rpc.statd']
export const GANESHA_PACKAGES = 'nfs-ganesha nfs-ganesha-vfs rpcbind (and nfs-common for NLM)'

export interface GaneshaOptions {
  /** The MOUNT path (default /vfs). */
  exportPath?: string
  /** Serve NLM v4 on a port of its own (and make sure rpc.statd runs). */
  nlm?: boolean
}

export interface GaneshaFixture {
  /** The host directory Ganesha exports. */
  exportDir: string
  /** The MOUNT path (Ganesha's Pseudo path). */
  exportPath: string
  nfsPort: number
  mountPort: number
  /** Its NLM v4 port (TCP and UDP) with `nlm`; 0 without. */
  nlmPort: number
  pid: number
  /** nfs:// URL of a path inside the export, with both ports. */
  url(path?: string, query?: string): string
  /** The Ganesha log so far (for failure messages). */
  log(): string
}

/** Every daemon this module started, killed on exit should a teardown never run. */
const started = new Set<ChildProcess>()
process.on('exit', () => {
  for (const c of started) c.kill('SIGKILL')
})

/*
 * tap kills a test process that times out (no 'exit' handlers run), which
 * would leave the daemon running. A detached shell watches both pids and
 * stops the daemon once the test process is gone; it exits on its own
 * when the daemon goes first.
 */
const WATCHDOG = 'while kill -0 "$1" 2>/dev/null; do kill -0 "$2" 2>/dev/null || exit 0; sleep 1; done; kill -TERM "$2" 2>/dev/null; sleep 10; kill -KILL "$2" 2>/dev/null'

function guard(child: ChildProcess): ChildProcess {
  started.add(child)
  if (child.pid !== undefined) {
    spawn('sh', ['-c', WATCHDOG, 'tsnfs-test-watchdog', String(process.pid), String(child.pid)], { detached: true, stdio: 'ignore' }).unref()
  }
  return child
}

function firstExisting(paths: readonly string[], what: string): string {
  const found = paths.find(p => existsSync(p))
  if (found === undefined) throw new Error(`${what} not found (tried ${paths.join(', ')}); install the Debian packages ${GANESHA_PACKAGES}`)
  return found
}

/** The FSAL plugin directory (/usr/lib/<multiarch>/ganesha on Debian). */
function pluginsDir(): string {
  for (const d of ['/usr/lib', ...readdirSync('/usr/lib').map(n => join('/usr/lib', n))]) {
    if (existsSync(join(d, 'ganesha', 'libfsalvfs.so'))) return join(d, 'ganesha')
  }
  throw new Error(`libfsalvfs.so not found under /usr/lib/*/ganesha; install the Debian package nfs-ganesha-vfs`)
}

function runOk(cmd: string, args: string[]): Promise<boolean> {
  return new Promise(resolve => {
    execFile(cmd, args, { timeout: 5000 }, err => {
      resolve(err === null)
    })
  })
}

/** Stop a child: SIGTERM, then SIGKILL after `graceMs`. */
async function stop(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    started.delete(child)
    return
  }
  const exited = new Promise<void>(resolve => child.once('exit', () => {
    resolve()
  }))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
  await exited
  clearTimeout(timer)
  started.delete(child)
}

/** rpcbind for this process: the host's, or one shared by the tests (stopped when none uses it). Resolves to release(). */
function useRpcbind(): Promise<() => void> {
  mkdirSync('/run/rpcbind', { recursive: true })
  return useSharedDaemon({
    name: 'rpcbind',
    command: firstExisting(RPCBIND_BINARIES, 'rpcbind'),
    args: ['-f'],
    answers: () => runOk('rpcinfo', ['-p', '127.0.0.1']),
    logFile: '/tmp/tsnfs-test-daemons/rpcbind.log',
  })
}

/**
 * rpc.statd for this process, likewise: in the foreground, without
 * notifying anyone at start (-L), its state in a directory of its own
 * (it outlives the test that started it).
 */
function useStatd(): Promise<() => void> {
  const dir = '/tmp/tsnfs-test-daemons/statd/state'
  mkdirSync(join(dir, 'sm'), { recursive: true })
  mkdirSync(join(dir, 'sm.bak'), { recursive: true })
  return useSharedDaemon({
    name: 'statd',
    command: firstExisting(STATD_BINARIES, 'rpc.statd (Debian package nfs-common)'),
    args: ['-F', '-d', '-L', '-P', dir],
    answers: () => runOk('rpcinfo', ['-t', '127.0.0.1', '100024', '1']),
    logFile: '/tmp/tsnfs-test-daemons/statd.log',
  })
}

/*
 * The daemon's whole configuration. NFS_CORE_PARAM: loopback only, the two
 * ports picked for this start, NFSv3 (with MOUNT v3) only, no UDP, no lock
 * manager unless asked (then on a third port, and UDP on), no rquota (its
 * default port 875 would be one more to collide), and mount_path_pseudo so clients MOUNT the Pseudo path. NFSv4:
 * Ganesha creates its recovery directories even with v4 off, so they go to
 * stateDir rather than /var/lib/nfs/ganesha; Graceless skips the 90 s grace
 * period. Kerberos off. One export of exportDir through FSAL_VFS, read-write,
 * AUTH_SYS, No_Root_Squash so a root client is root on the host directory,
 * as the tests compare owners there.
 */
function config(exportDir: string, stateDir: string, nfsPort: number, mountPort: number, nlmPort: number, exportPath: string): string {
  const nlm = nlmPort === 0 ? '\tEnable_NLM = false;' : `\tEnable_NLM = true;\n\tNLM_Port = ${String(nlmPort)};`
  return `NFS_CORE_PARAM {
\tBind_addr = 127.0.0.1;
\tNFS_Port = ${String(nfsPort)};
\tMNT_Port = ${String(mountPort)};
\tProtocols = 3;
${nlm}
\tEnable_RQUOTA = false;
\tEnable_UDP = ${nlmPort === 0 ? 'false' : 'true'};
\tmount_path_pseudo = true;
\tPlugins_Dir = "${pluginsDir()}";
}
NFSv4 {
\tGraceless = true;
\tRecoveryRoot = "${join(stateDir, 'recovery')}";
}
NFS_KRB5 {
\tActive_krb5 = false;
}
EXPORT_DEFAULTS {
\tAccess_Type = RW;
\tSquash = No_Root_Squash;
\tSecType = sys;
\tProtocols = 3;
\tTransports = TCP;
}
EXPORT {
\tExport_Id = 2;
\tPath = "${exportDir}";
\tPseudo = "${exportPath}";
\tAccess_Type = RW;
\tSquash = No_Root_Squash;
\tFSAL {
\t\tName = VFS;
\t}
}
LOG {
\tDefault_Log_Level = EVENT;
}
`
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n')
  } catch {
    return '(no log)'
  }
}

/** Ganesha's MOUNT lists `exportPath` (EXPORT procedure, through our client). */
async function exportListed(mountPort: number, nfsPort: number, exportPath: string): Promise<boolean> {
  try {
    const list = await NfsClient.exportList(`nfs://127.0.0.1${exportPath}?nfsport=${String(nfsPort)}&mountport=${String(mountPort)}`)
    return list.some((e) => e.dir === exportPath)
  } catch {
    return false
  }
}

/** One attempt on one pair of ports; null when the ports were taken meanwhile. */
async function startOnce(exportDir: string, stateDir: string, exportPath: string, withNlm: boolean): Promise<{ g: GaneshaFixture; child: ChildProcess } | null> {
  const bin = firstExisting(GANESHA_BINARIES, 'ganesha.nfsd')
  const nfsPort = await freePort()
  let mountPort = await freePort()
  while (mountPort === nfsPort) mountPort = await freePort()
  let nlmPort = 0
  // With NLM, UDP too: these were free on TCP only; a UDP clash is a failed start, and another try.
  while (withNlm && (nlmPort === 0 || nlmPort === nfsPort || nlmPort === mountPort)) nlmPort = await freePort()
  const conf = join(stateDir, 'ganesha.conf')
  const log = join(stateDir, 'ganesha.log')
  mkdirSync(join(stateDir, 'recovery'), { recursive: true })
  writeFileSync(conf, config(exportDir, stateDir, nfsPort, mountPort, nlmPort, exportPath))
  const out = openSync(join(stateDir, 'stdout'), 'a')
  const child = guard(
    spawn(bin, ['-F', '-f', conf, '-L', log, '-p', join(stateDir, 'ganesha.pid'), '-N', 'NIV_EVENT'], {
      stdio: ['ignore', out, out],
    }),
  )
  closeSync(out)
  const deadline = Date.now() + 30_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      started.delete(child)
      const text = tail(log)
      if (/Address already in use|bind.*failed/i.test(text)) return null
      throw new Error(`ganesha.nfsd exited during start-up (status ${String(child.exitCode ?? child.signalCode)}):\n${text}`)
    }
    // An NFS NULL call straight to the port, as ganesha.sh waits for it, a MOUNT NULL to its own
    // port, and the export list over MOUNT with our client: NFS answering alone twice left a test's
    // first EXPORT call refused (CI, under load), and NULL answering was not enough to be sure.
    if (await runOk('rpcinfo', ['-n', String(nfsPort), '-t', '127.0.0.1', '100003', '3']) &&
      await runOk('rpcinfo', ['-n', String(mountPort), '-t', '127.0.0.1', '100005', '3']) &&
      await exportListed(mountPort, nfsPort, exportPath)) {
      const g: GaneshaFixture = {
        exportDir,
        exportPath,
        nfsPort,
        mountPort,
        nlmPort,
        pid: child.pid ?? 0,
        url: (path = '', query = '') =>
          `nfs://127.0.0.1${exportPath}${path}?nfsport=${String(nfsPort)}&mountport=${String(mountPort)}${query === '' ? '' : `&${query}`}`,
        log: () => tail(log, 40),
      }
      return { g, child }
    }
    await sleep(200)
  }
  await stop(child, 5000)
  throw new Error(`ganesha.nfsd did not answer NFS NULL on 127.0.0.1:${String(nfsPort)} within 30 s:\n${tail(log)}`)
}

export interface GaneshaProcess {
  g: GaneshaFixture
  /** Stop Ganesha, then let go of rpc.statd and rpcbind. */
  stop(): Promise<void>
}

/**
 * Start Ganesha exporting `exportDir` (which must exist); its config, log
 * and recovery directory go to `stateDir`. For callers without a tap test
 * (the benchmarks): the caller stops it.
 */
export async function launchGanesha(exportDir: string, stateDir: string, opts: GaneshaOptions = {}): Promise<GaneshaProcess> {
  if (process.getuid?.() !== 0) throw new Error('NFS-Ganesha tests must run as root (Ganesha needs it to serve FSAL_VFS)')
  const releases: (() => void)[] = [await useRpcbind()]
  const letGo = (): void => {
    for (const r of releases.reverse()) r()
  }
  try {
    if (opts.nlm === true) releases.push(await useStatd())
    for (let attempt = 0; attempt < 3; attempt++) {
      const r = await startOnce(exportDir, stateDir, opts.exportPath ?? '/vfs', opts.nlm === true)
      if (r === null) continue
      // Ganesha first: it unregisters from rpcbind on the way out.
      return {
        g: r.g,
        stop: async () => {
          await stop(r.child, 10_000)
          letGo()
        },
      }
    }
    throw new Error('ganesha.nfsd could not bind free ports in 3 attempts')
  } catch (err) {
    letGo()
    throw err
  }
}

/**
 * Start Ganesha exporting `exportDir` (which must exist) as `exportPath`;
 * its config, log and recovery directory go to `stateDir`. Stopped
 * (SIGTERM) at t's teardown.
 */
export async function startGanesha(t: Test, exportDir: string, stateDir: string, exportPath = '/vfs', opts: Omit<GaneshaOptions, 'exportPath'> = {}): Promise<GaneshaFixture> {
  const r = await launchGanesha(exportDir, stateDir, { ...opts, exportPath })
  t.teardown(() => r.stop())
  return r.g
}
