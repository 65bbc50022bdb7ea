/*
 * NFS-Ganesha (Debian packages nfs-ganesha + nfs-ganesha-vfs, and rpcbind)
 * as an independent NFSv3 server for client tests: FSAL_VFS exporting a
 * host directory, NFSv3 over TCP only, on 127.0.0.1 and two free ports.
 * The configuration is written here for each start (config() below); it
 * matches bench/ganesha/ganesha-vfs.conf but for the ports and paths.
 * Needs root.
 *
 * Ganesha 4.3 exits ("Cannot register NFS V3 on TCP") without a portmapper,
 * so rpcbind is started (and stopped at teardown) when none answers on 111.
 * `rpcbind -h 127.0.0.1` crashes on Debian 12, so it listens on the
 * wildcard address; clients never use it (URLs carry nfsport/mountport).
 * Start-up problems throw with the reason and the log's tail: a test that
 * needs Ganesha fails, it does not skip.
 */
import type { Test } from 'tap'
import { execFile, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, openSync, closeSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort } from './ports.ts'

const GANESHA_BINARIES = ['/usr/bin/ganesha.nfsd', '/usr/sbin/ganesha.nfsd']
const RPCBIND_BINARIES = ['/usr/sbin/rpcbind', '/sbin/rpcbind', '/usr/bin/rpcbind']
export const GANESHA_PACKAGES = 'nfs-ganesha nfs-ganesha-vfs rpcbind'

export interface GaneshaFixture {
  /** The host directory Ganesha exports. */
  exportDir: string
  /** The MOUNT path (Ganesha's Pseudo path). */
  exportPath: string
  nfsPort: number
  mountPort: number
  /** Its NLM v4 port (TCP), with `nlm`; 0 without. */
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

/** The rpcbind we started, or null when one was already answering. */
async function ensureRpcbind(): Promise<ChildProcess | null> {
  if (await runOk('rpcinfo', ['-p', '127.0.0.1'])) return null
  const bin = firstExisting(RPCBIND_BINARIES, 'rpcbind')
  mkdirSync('/run/rpcbind', { recursive: true })
  const child = guard(spawn(bin, ['-f'], { stdio: 'ignore' }))
  for (let i = 0; i < 50; i++) {
    if (child.exitCode !== null) {
      started.delete(child)
      throw new Error(`rpcbind -f exited with status ${String(child.exitCode)}`)
    }
    if (await runOk('rpcinfo', ['-p', '127.0.0.1'])) return child
    await sleep(100)
  }
  await stop(child, 2000)
  throw new Error('rpcbind did not answer on 127.0.0.1:111 within 5 s')
}

const STATD_BINARIES = ['/usr/sbin/rpc.statd', '/sbin/rpc.statd']

/**
 * Ganesha's NLM asks the host's status monitor to watch each locking client
 * (SM_MON to rpc.statd through rpcbind) and refuses locks (NLM4_DENIED_NOLOCKS)
 * when none answers. The rpc.statd we started (its state in stateDir), or
 * null when one already answers.
 */
async function ensureStatd(stateDir: string): Promise<ChildProcess | null> {
  if (await runOk('rpcinfo', ['-t', '127.0.0.1', '100024', '1'])) return null
  const bin = firstExisting(STATD_BINARIES, 'rpc.statd (Debian package nfs-common)')
  const dir = join(stateDir, 'statd')
  mkdirSync(join(dir, 'sm'), { recursive: true })
  mkdirSync(join(dir, 'sm.bak'), { recursive: true })
  const out = openSync(join(stateDir, 'statd.log'), 'a')
  // -L: no SM_NOTIFY to the hosts a previous statd in this directory watched (there are none).
  const child = guard(spawn(bin, ['-F', '-d', '-L', '-P', dir], { stdio: ['ignore', out, out] }))
  closeSync(out)
  for (let i = 0; i < 50; i++) {
    if (child.exitCode !== null) {
      started.delete(child)
      throw new Error(`rpc.statd exited with status ${String(child.exitCode)}:\n${tail(join(stateDir, 'statd.log'))}`)
    }
    if (await runOk('rpcinfo', ['-t', '127.0.0.1', '100024', '1'])) return child
    await sleep(100)
  }
  await stop(child, 2000)
  throw new Error(`rpc.statd did not answer through rpcbind within 5 s:\n${tail(join(stateDir, 'statd.log'))}`)
}

/*
 * The daemon's whole configuration. NFS_CORE_PARAM: loopback only, the two
 * ports picked for this start, NFSv3 (with MOUNT v3) only, no UDP, no lock
 * manager or rquota (rquota's default port 875 would be one more to
 * collide) unless NLM is asked for: then NLM on a port of its own and UDP
 * on (rpc.statd calls Ganesha's NLM back over UDP when a client restarts),
 * and mount_path_pseudo so clients MOUNT the Pseudo path. NFSv4:
 * Ganesha creates its recovery directories even with v4 off, so they go to
 * stateDir rather than /var/lib/nfs/ganesha; Graceless skips the 90 s grace
 * period. Kerberos off. One export of exportDir through FSAL_VFS, read-write,
 * AUTH_SYS, No_Root_Squash so a root client is root on the host directory,
 * as the tests compare owners there.
 */
function config(exportDir: string, stateDir: string, nfsPort: number, mountPort: number, exportPath: string, nlmPort: number): string {
  return `NFS_CORE_PARAM {
\tBind_addr = 127.0.0.1;
\tNFS_Port = ${String(nfsPort)};
\tMNT_Port = ${String(mountPort)};
\tProtocols = 3;
${nlmPort === 0 ? '\tEnable_NLM = false;' : `\tEnable_NLM = true;\n\tNLM_Port = ${String(nlmPort)};`}
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

/** One attempt on one pair of ports; null when the ports were taken meanwhile. */
async function startOnce(exportDir: string, stateDir: string, exportPath: string, nlm: boolean): Promise<{ g: GaneshaFixture; child: ChildProcess } | null> {
  const bin = firstExisting(GANESHA_BINARIES, 'ganesha.nfsd')
  const nfsPort = await freePort()
  let mountPort = await freePort()
  while (mountPort === nfsPort) mountPort = await freePort()
  let nlmPort = 0
  while (nlm && (nlmPort === 0 || nlmPort === nfsPort || nlmPort === mountPort)) nlmPort = await freePort()
  const conf = join(stateDir, 'ganesha.conf')
  const log = join(stateDir, 'ganesha.log')
  // UDP too with NLM: the ports above were free on TCP only; a UDP clash shows as a failed start and a retry.
  mkdirSync(join(stateDir, 'recovery'), { recursive: true })
  writeFileSync(conf, config(exportDir, stateDir, nfsPort, mountPort, exportPath, nlmPort))
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
    // An NFS NULL call straight to the port, as ganesha.sh waits for it.
    if (await runOk('rpcinfo', ['-n', String(nfsPort), '-t', '127.0.0.1', '100003', '3'])) {
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

/**
 * Start Ganesha exporting `exportDir` (which must exist) as `exportPath`;
 * its config, log and recovery directory go to `stateDir`. Stopped
 * (SIGTERM) at t's teardown, with rpcbind if this started it.
 */
export async function startGanesha(t: Test, exportDir: string, stateDir: string, exportPath = '/vfs', opts: { nlm?: boolean } = {}): Promise<GaneshaFixture> {
  if (process.getuid?.() !== 0) throw new Error('NFS-Ganesha tests must run as root (Ganesha needs it to serve FSAL_VFS)')
  const rpcbind = await ensureRpcbind()
  let statd: ChildProcess | null = null
  try {
    if (opts.nlm === true) statd = await ensureStatd(stateDir)
    for (let attempt = 0; attempt < 3; attempt++) {
      const r = await startOnce(exportDir, stateDir, exportPath, opts.nlm === true)
      if (r === null) continue
      // Ganesha first (it unregisters from rpcbind on the way out), then statd and our rpcbind.
      t.teardown(async () => {
        await stop(r.child, 10_000)
        if (statd !== null) await stop(statd, 5000)
        if (rpcbind !== null) await stop(rpcbind, 5000)
      })
      return r.g
    }
    throw new Error('ganesha.nfsd could not bind free ports in 3 attempts')
  } catch (err) {
    if (statd !== null) await stop(statd, 5000)
    if (rpcbind !== null) await stop(rpcbind, 5000)
    throw err
  }
}
