/*
 * tsnfs serve: run the server until SIGINT/SIGTERM; SIGHUP reloads the
 * export list (a bad file keeps the running exports and logs why).
 */
import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { pino } from 'pino'
import { defaultExports, loadExports } from '../server/exports/parse.ts'
import { createServer } from '../server/index.ts'
import { defaultStateDir, instanceStateDir, lockStateDir } from '../server/state.ts'
import { defaultAdminPath } from '../server/admin/client.ts'
import { parseMetricsAddress } from '../server/metrics/endpoint.ts'
import type { RpcLimits } from '../server/rpc/server.ts'
import { wantsHelp } from './help.ts'
import { stopSignal } from './stop-signal.ts'
import type { ServerMemoryOptions } from '../server/memory.ts'
import type { LockingOptions } from '../server/locking.ts'
import { PrimaryReplication } from '../server/replication/primary.ts'
import { identityOf, parseHostPort, parseMs, serviceAddressOf } from './replication-args.ts'
import { readBackupSchedule, startBackupManager } from './backup-serve.ts'
import { NDMP_FLAGS, NDMP_USAGE, ndmpOf, withNdmpDefault } from './ndmp-args.ts'
import { setHeapGrowth } from '../common/heap-growth.ts'

/** Resource limit flags (issue 7 §2): flag, RpcLimits field, and the unit on the command line. */
const LIMIT_FLAGS = [
  ['max-connections', 'maxConnections', 1],
  ['max-connections-per-client', 'maxConnectionsPerClient', 1],
  ['max-requests', 'maxInFlightTotal', 1],
  ['max-requests-per-connection', 'maxInFlightPerConnection', 1],
  ['max-record-size', 'maxRecordSize', 1],
  // Seconds on the command line, ms in RpcLimits; 0 turns the timeout off.
  ['idle-timeout', 'idleTimeoutMs', 1000],
  ['record-timeout', 'recordTimeoutMs', 1000],
] as const satisfies readonly (readonly [string, keyof RpcLimits, number])[]

export const SERVE_USAGE = `usage: tsnfs serve [--exports FILE] [--port N] [--host ADDR] [--state-dir DIR] [--portmap [PORT]]
  serve NFSv3, MOUNT and PORTMAP on TCP and UDP port N; without --exports, one read-write
  in-memory export /export open to any client. SIGHUP re-reads FILE; SIGINT/SIGTERM stop.
  --exports FILE        the export list (exports(5) syntax; check it with tsnfs exports --check)
  --port N              TCP and UDP port (default 2049; 0: any free port)
  --host ADDR           listen on ADDR only (default: every address)
  --state-dir DIR       handle key, mount list, local export indexes; one live server per
                        directory (default /var/lib/tsnfs as root, ~/.local/state/tsnfs else,
                        or $TSNFS_STATE_DIR; below it port-N/ for a port other than 2049)
  --portmap [PORT]      also answer PORTMAP on PORT (default 111)
  --rpcbind | --no-rpcbind   register with the system rpcbind on 111 (default: when one answers,
                        the port is not 0 and --portmap is not 111); unregistered on exit.
                        Another server's registration that still answers is not replaced:
                        --rpcbind fails, the default serves without registering
  --rpcbind-replace     --rpcbind, taking over another live server's registration (warns)
  --grace S             after a start, only lock reclaims for S seconds (default 90; ends early
                        once every client that held locks has reclaimed)
  --nsm-name NAME       the name our status monitor announces to lock clients (default hostname)
  --no-lock             no lock manager (NLM) or status monitor (NSM): clients mount with nolock
  --metrics HOST:PORT   Prometheus text on http://HOST:PORT/metrics
  --admin PATH|off      the admin socket (tsnfs volume status|fail|replace|scrub online), a Unix
                        socket of mode 0600 (default STATE-DIR/admin.sock; off: none)
  --standby HOST:PORT   replicate every export to the standby at HOST:PORT (\`tsnfs standby\`);
                        repeat for several. --sync (default): a reply that promises stability
                        waits for every live standby; --async: standbys trail by up to --lag MS
  --node NAME --cluster NAME   this node's replication identity (default: host name, tsnfs)
  --heartbeat MS --heartbeat-timeout MS   standby checks (default 1000, 5000)
  --log-keep SIZE       change log kept for standbys that have not acknowledged it, dead ones
                        too (default 1G); past it such a standby needs a full resync
  --resync-verify       a full resync compares checksums of files whose size and mtime agree
  --vip ADDR/PREFIX --vip-dev DEV   the service address this primary holds: removed when a
                        standby has taken over (fenced); --on-fenced CMD runs then too
  --backup-schedule FILE   run the backups of a schedule file (tsnfs backup --help; README
                        "Backup manager"); --backup-state DIR its jobs and logs (STATE-DIR/backup)
${NDMP_USAGE}  --log-level LEVEL     fatal, error, warn, info (default), debug, trace; JSON lines on stderr
  limits: --max-connections N (4096)  --max-connections-per-client N (256)
          --max-requests N (512 in flight in all)  --max-requests-per-connection N (64)
          --max-record-size BYTES  --idle-timeout S (300; 0 off)  --record-timeout S (30; 0 off)
`
/** Memory flags (issue 11 §6): sizes in bytes, with an optional K, M or G suffix (×1024…); 0 allowed. */
const SIZE_FLAGS = [
  ['record-pool', 'recordPoolBytes'],
  ['drc-bytes', 'drcBytes'],
] as const satisfies readonly (readonly [string, keyof RpcLimits])[]
const MEMORY_SIZE_FLAGS = [
  ['chunk-pool', 'chunkPoolBytes'],
  ['read-pool', 'readPoolBytes'],
] as const satisfies readonly (readonly [string, keyof ServerMemoryOptions])[]

export async function serve(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    process.stdout.write(SERVE_USAGE)
    return 0
  }
  const { values } = parseArgs({
    args: withNdmpDefault(withPortmapDefault(argv)),
    options: {
      exports: { type: 'string' },
      port: { type: 'string', default: '2049' },
      host: { type: 'string' },
      'state-dir': { type: 'string' },
      portmap: { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
      metrics: { type: 'string' },
      admin: { type: 'string' },
      rpcbind: { type: 'boolean' },
      'no-rpcbind': { type: 'boolean' },
      'rpcbind-replace': { type: 'boolean' },
      ...Object.fromEntries(LIMIT_FLAGS.map(([flag]) => [flag, { type: 'string' as const }])),
      ...Object.fromEntries([...SIZE_FLAGS, ...MEMORY_SIZE_FLAGS].map(([flag]) => [flag, { type: 'string' as const }])),
      'memory-idle': { type: 'string' },
      'no-idle-gc': { type: 'boolean' },
      'heap-budget': { type: 'string' },
      'heap-growth': { type: 'string' },
      grace: { type: 'string' },
      'nsm-name': { type: 'string' },
      'no-lock': { type: 'boolean' },
      standby: { type: 'string', multiple: true },
      sync: { type: 'boolean' },
      async: { type: 'boolean' },
      lag: { type: 'string' },
      node: { type: 'string' },
      cluster: { type: 'string' },
      heartbeat: { type: 'string' },
      'heartbeat-timeout': { type: 'string' },
      'log-keep': { type: 'string' },
      'resync-verify': { type: 'boolean' },
      vip: { type: 'string' },
      'vip-dev': { type: 'string' },
      'on-fenced': { type: 'string' },
      'backup-schedule': { type: 'string' },
      'backup-state': { type: 'string' },
      ...NDMP_FLAGS,
    },
    allowPositionals: false,
  })
  const port = Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port: not a port number: ${values.port}`)
  const portmapPort = values.portmap === undefined ? undefined : Number(values.portmap === '' ? 111 : values.portmap)
  if (portmapPort !== undefined && (!Number.isInteger(portmapPort) || portmapPort < 0 || portmapPort > 65535)) {
    throw new Error(`--portmap: not a port number: ${String(values.portmap)}`)
  }
  const metrics = values.metrics === undefined ? undefined : parseMetricsAddress(values.metrics)
  const locking = lockingOf(values)
  const ndmp = ndmpOf(values)
  if ((values.rpcbind === true || values['rpcbind-replace'] === true) && values['no-rpcbind'] === true) {
    throw new Error('--rpcbind (or --rpcbind-replace) and --no-rpcbind contradict each other')
  }
  // Registering with the system rpcbind is the default for a fixed port; an ephemeral port (0) is a test or a one-off.
  const registerRpcbind =
    values['rpcbind-replace'] === true ? 'replace' : values.rpcbind === true ? true : values['no-rpcbind'] === true || port === 0 ? false : 'auto'
  // Logs go to stderr as JSON; stdout carries only what the command prints for people.
  const log = pino({ level: values['log-level'] }, pino.destination(2))
  const rpcLimits = limitsOf(values)
  const memory = memoryOf(values, rpcLimits)
  setHeapGrowth(heapGrowthOf(values['heap-growth']))
  const exportsFile = values.exports
  const list = exportsFile === undefined ? defaultExports() : await loadExports(exportsFile)
  // Each port its own state directory unless one is named (instanceStateDir); the lock refuses a shared one.
  const stateDir = values['state-dir'] ?? (process.env.TSNFS_STATE_DIR ? defaultStateDir() : instanceStateDir(defaultStateDir(), port))
  if (values['backup-state'] !== undefined && values['backup-schedule'] === undefined) throw new Error('--backup-state needs --backup-schedule')
  const schedule = values['backup-schedule'] === undefined ? undefined : await readBackupSchedule(values['backup-schedule'])
  const lock = await lockStateDir(stateDir, { port })
  const admin = adminPathOf(values.admin, stateDir, log)
  // However serve ends (a failed start too), the pid file goes with the process.
  process.once('exit', () => {
    lock.releaseSync()
  })

  const ending = { fenced: false }
  if (values.standby === undefined && (values.vip !== undefined || values['on-fenced'] !== undefined)) throw new Error('--vip and --on-fenced need --standby')
  const address = values.standby === undefined ? undefined : serviceAddressOf(values, identityOf(values).node, log)
  const replication = await replicationOf(values, stateDir, exportsFile, log, (epoch) => {
    ending.fenced = true
    // Give the address up first (another node holds it now), then stop.
    void (address?.fenced(epoch) ?? Promise.resolve()).finally(() => process.kill(process.pid, 'SIGTERM'))
  })
  const server = await createServer({
    exports: list,
    stateDir,
    port,
    ...(values.host === undefined ? {} : { host: values.host }),
    ...(portmapPort === undefined ? {} : { portmapPort }),
    logger: log,
    ...(metrics === undefined ? {} : { metrics }),
    registerRpcbind,
    rpcLimits,
    memory,
    locking,
    ...(admin === undefined ? {} : { admin }),
    ...(replication === undefined ? {} : { replication }),
    ...(ndmp === undefined ? {} : { ndmp }),
  })
  const host = values.host ?? '127.0.0.1'
  const p = server.port
  process.stdout.write(`tsnfs serving NFSv3 + MOUNT + PORTMAP${locking === false ? '' : ' + NLM + NSM'} on TCP and UDP port ${p}\n`)
  // Without a lock manager, Linux and macOS clients must be told not to ask for one.
  const [nolock, nolocks] = locking === false ? [',nolock', ',nolocks'] : ['', '']
  for (const e of list.exports) {
    process.stdout.write(
      `  export ${e.path}\n` +
        `    libnfs:  nfs://${host}${e.path}?nfsport=${p}&mountport=${p}\n` +
        `    Linux:   mount -t nfs -o vers=3,tcp,port=${p},mountport=${p},mountproto=tcp${nolock} ${host}:${e.path} /mnt/x\n` +
        `    macOS:   mount -t nfs -o vers=3,tcp,port=${p},mountport=${p}${nolocks},resvport ${host}:${e.path} /mnt/x\n`,
    )
  }

  if (server.metricsPort !== null && metrics !== undefined) {
    process.stdout.write(`  metrics: http://${metrics.host.includes(':') ? `[${metrics.host}]` : metrics.host}:${String(server.metricsPort)}/metrics\n`)
  }
  if (server.adminPath !== null) process.stdout.write(`  admin: ${server.adminPath}\n`)
  const backups = schedule === undefined ? undefined : await startBackupManager(schedule, values['backup-state'], stateDir, log)
  if (backups !== undefined) process.stdout.write(`  backups: ${String(backups.jobs)} scheduled jobs, state ${backups.stateDir}\n`)
  if (server.ndmpPort !== null && ndmp !== undefined) {
    process.stdout.write(`  ndmp: TCP port ${String(server.ndmpPort)} (NDMP v4 and v3, ${String(ndmp.credentials.size)} user(s), ${String(ndmp.tapes?.length ?? 0)} tape device(s))\n`)
  }
  if (server.rpcbind !== null) process.stdout.write(`  registered with the system rpcbind (MOUNT 1+3, NFS 3 on tcp and udp port ${String(p)})\n`)

  if (exportsFile !== undefined) {
    process.on('SIGHUP', () => {
      loadExports(exportsFile)
        .then((next) => server.reload(next))
        .catch((err: unknown) => {
          log.error({ err }, 'reload failed; the running exports are unchanged')
        })
    })
  }
  await stopSignal(log)
  await backups?.close()
  await server.close()
  log.flush()
  // A fenced primary stops: another node serves this data now (exit status 3 says why to a supervisor).
  return ending.fenced ? 3 : 0
}

/** --standby and its companions: the primary's replication, or undefined without --standby. */
async function replicationOf(
  values: {
    standby?: string[] | undefined; sync?: boolean | undefined; async?: boolean | undefined; lag?: string | undefined; node?: string | undefined; cluster?: string | undefined
    heartbeat?: string | undefined; 'heartbeat-timeout'?: string | undefined; 'log-keep'?: string | undefined; 'resync-verify'?: boolean | undefined
  },
  stateDir: string,
  exportsFile: string | undefined,
  log: pino.Logger,
  onFenced: (epoch: bigint) => void,
): Promise<PrimaryReplication | undefined> {
  const standbys = (values.standby ?? []).map((s) => parseHostPort('standby', s))
  if (standbys.length === 0) {
    for (const f of ['sync', 'async', 'lag', 'heartbeat', 'heartbeat-timeout', 'log-keep', 'resync-verify'] as const) if (values[f] !== undefined) throw new Error(`--${f} needs --standby`)
    return undefined
  }
  if (values.sync === true && values.async === true) throw new Error('--sync and --async contradict each other')
  if (values.lag !== undefined && values.async !== true) throw new Error('--lag is for --async')
  const lagBoundMs = parseMs('lag', values.lag)
  const heartbeatMs = parseMs('heartbeat', values.heartbeat)
  const timeoutMs = parseMs('heartbeat-timeout', values['heartbeat-timeout'])
  const logKeep = values['log-keep'] === undefined ? undefined : parseSize('log-keep', values['log-keep'])
  if (logKeep === 0) throw new Error('--log-keep: 0 would keep no log at all; give a size')
  return PrimaryReplication.open({
    stateDir,
    ...identityOf(values),
    standbys,
    mode: values.async === true ? 'async' : 'sync',
    ...(lagBoundMs === undefined ? {} : { lagBoundMs }),
    ...(heartbeatMs === undefined ? {} : { heartbeatMs }),
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
    ...(logKeep === undefined ? {} : { logKeepBytes: logKeep }),
    ...(values['resync-verify'] === true ? { resyncVerify: true } : {}),
    ...(exportsFile === undefined ? {} : { exportListText: await readFile(exportsFile) }),
    log,
    onFenced,
  })
}

/** The longest Unix socket path Linux takes (sun_path is 108 bytes with its NUL). */
const MAX_SOCKET_PATH = 107

/** --admin: a path, `off`, or absent for STATE-DIR/admin.sock (skipped, with a warning, when too long for a socket). */
function adminPathOf(flag: string | undefined, stateDir: string, log: { warn(msg: string): void }): string | undefined {
  if (flag === 'off') return undefined
  if (flag !== undefined) {
    if (flag === '' || Buffer.byteLength(flag) > MAX_SOCKET_PATH) throw new Error(`--admin: a socket path of 1 to ${MAX_SOCKET_PATH} bytes, or off`)
    return flag
  }
  const path = defaultAdminPath(stateDir)
  if (Buffer.byteLength(path) <= MAX_SOCKET_PATH) return path
  log.warn(`no admin socket: ${path} is longer than a socket path may be (give --admin PATH)`)
  return undefined
}

/** The limit flags given, as RpcLimits (the rest keep their defaults). */
function limitsOf(values: Record<string, unknown>): Partial<RpcLimits> {
  const limits: Partial<RpcLimits> = {}
  for (const [flag, field, unit] of LIMIT_FLAGS) {
    const text = values[flag]
    if (typeof text !== 'string') continue
    const n = Number(text)
    const min = unit === 1 ? 1 : 0
    if (text.trim() === '' || !Number.isFinite(n) || n < min || (unit === 1 && !Number.isInteger(n))) {
      throw new Error(`--${flag}: not a ${unit === 1 ? 'positive integer' : 'number of seconds'}: ${text}`)
    }
    limits[field] = Math.round(n * unit)
  }
  return limits
}

/** A size in bytes: digits with an optional K, M or G suffix (powers of 1024). */
export function parseSize(flag: string, text: string): number {
  const m = /^(\d+)([KMG]?)i?B?$/i.exec(text.trim())
  const unit = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[(m?.[2] ?? '').toUpperCase()] ?? 1
  const n = m === null ? NaN : Number(m[1]) * unit
  if (!Number.isSafeInteger(n)) throw new Error(`--${flag}: not a size in bytes (digits, optionally K, M or G): ${text}`)
  return n
}

/** The memory flags given: pool and cache sizes (RpcLimits fields go into `limits`), and the idle reclaim. */
function memoryOf(values: Record<string, unknown>, limits: Partial<RpcLimits>): Partial<ServerMemoryOptions> {
  const out: Partial<ServerMemoryOptions> = {}
  for (const [flag, field] of SIZE_FLAGS) {
    const text = values[flag]
    if (typeof text === 'string') limits[field] = parseSize(flag, text)
  }
  for (const [flag, field] of MEMORY_SIZE_FLAGS) {
    const text = values[flag]
    if (typeof text === 'string') out[field] = parseSize(flag, text)
  }
  const idle = values['memory-idle']
  if (typeof idle === 'string') {
    const n = Number(idle)
    if (idle.trim() === '' || !Number.isFinite(n) || n < 0) throw new Error(`--memory-idle: not a number of seconds: ${idle}`)
    out.idleMs = Math.round(n * 1000)
  }
  if (values['no-idle-gc'] === true) out.gc = false
  const budget = values['heap-budget']
  if (typeof budget === 'string') out.heapBudgetBytes = budget.trim() === 'off' ? 0 : parseSize('heap-budget', budget)
  return out
}

/**
 * `--heap-growth PERCENT|off` (default 50): V8's old generation may grow this far past what the
 * last full collection left live (common/heap-growth.ts). Measured over a 1,000,000-file walk
 * (bench/README.md, session 35): with V8's own factor (up to 4×) RSS reached cache= + 280–460 MiB;
 * at 50 (and the handle table of server/nfs3/filehandle.ts) it stayed within cache= + 190 (the
 * walk's time: not settled, −19 to +57 % by pair on a loaded machine). 20 looked slower still
 * (one 100,000-file run: walks of 21 s against 11–15).
 */
export const DEFAULT_HEAP_GROWTH_PERCENT = 50

function heapGrowthOf(text: string | undefined): number {
  if (text === undefined) return DEFAULT_HEAP_GROWTH_PERCENT
  if (text.trim() === 'off') return 0
  const n = /^\d{1,4}$/.test(text.trim()) ? Number(text) : NaN
  if (!(n >= 1)) throw new Error(`--heap-growth: not a whole percentage from 1 (or off): ${text}`)
  return n
}

/** `--portmap` without a port means 111 (parseArgs has no optional values): supply it. */
function withPortmapDefault(argv: readonly string[]): string[] {
  const out: string[] = []
  argv.forEach((a, i) => {
    out.push(a)
    const next = argv[i + 1]
    if (a === '--portmap' && (next === undefined || next.startsWith('-'))) out.push('111')
  })
  return out
}

/** --grace, --nsm-name, --no-lock: the lock manager's options, or false for none. */
function lockingOf(values: { grace?: string | undefined; 'nsm-name'?: string | undefined; 'no-lock'?: boolean | undefined }): LockingOptions | false {
  if (values['no-lock'] === true) {
    if (values.grace !== undefined || values['nsm-name'] !== undefined) throw new Error('--no-lock contradicts --grace and --nsm-name')
    return false
  }
  const o: LockingOptions = {}
  if (values.grace !== undefined) {
    const s = Number(values.grace)
    if (values.grace.trim() === '' || !Number.isFinite(s) || s < 0 || s > 3600) throw new Error(`--grace: seconds from 0 to 3600, not ${values.grace}`)
    o.nlm = { graceMs: s * 1000 }
  }
  if (values['nsm-name'] !== undefined) {
    if (values['nsm-name'] === '' || Buffer.byteLength(values['nsm-name']) > 1024) throw new Error('--nsm-name: 1 to 1024 bytes')
    o.nsm = { name: values['nsm-name'] }
  }
  return o
}
