/*
 * tsnfs standby: keep the exports of a primary (`tsnfs serve --standby`) in
 * step on this node's own backends, and serve them over NFS once told to
 * take over (`tsnfs replication takeover HOST:PORT`). Until then only the
 * replication program answers, on --listen.
 */
import { parseArgs } from 'node:util'
import { pino } from 'pino'
import { loadExports } from '../server/exports/parse.ts'
import { parseMetricsAddress } from '../server/metrics/endpoint.ts'
import { StandbyNode } from '../server/replication/standby-node.ts'
import { lockStateDir } from '../server/state.ts'
import { wantsHelp } from './help.ts'
import { stopSignal } from './stop-signal.ts'
import { asPrimaryOf, autoTakeoverOf, identityOf, parseHostPort, serviceAddressOf } from './replication-args.ts'

export const STANDBY_USAGE = `usage: tsnfs standby --listen HOST:PORT --exports FILE --state-dir DIR --port NFSPORT [--host ADDR]
                     [--node NAME] [--cluster NAME] [--log-level LEVEL]
  apply a primary's changes to the exports of FILE (the same paths as the primary's, each with
  this node's own backend), acknowledging what is durable here; after
  \`tsnfs replication takeover HOST:PORT\` serve them over NFS on NFSPORT with the primary's
  file handles. SIGINT/SIGTERM stop.
  --listen HOST:PORT    where the primary's senders connect (the replication program)
  --exports FILE        this node's export list (exports(5) syntax)
  --state-dir DIR       id maps, positions, the primary's handle key; one node per directory
  --port NFSPORT        the NFS port after a takeover (0: any free port)
  --host ADDR           the NFS address after a takeover (default: every address)
  --node NAME --cluster NAME   this node's identity (default: host name, tsnfs)
  --vip ADDR/PREFIX --vip-dev DEV   at the takeover, add the service address to DEV and
                        announce it (gratuitous ARP by arping when installed), as keepalived would
  --on-takeover CMD     run CMD (/bin/sh -c) after the takeover, with TSNFS_ROLE, TSNFS_EPOCH,
                        TSNFS_NODE in its environment; its failure is logged, never undoes it
  --auto-takeover       take over without an operator when the primary has been silent for the
                        heartbeat timeout AND a strict majority of the --witness set agrees it is
                        dead (none still sees it, none knows a higher epoch); needs --primary and
                        at least one --witness. Enable it on one standby only (deploy/replication.md)
  --primary NAME=HOST:PORT   the primary's node name and NFS port (its replication program)
  --witness NAME=HOST:PORT   a witness (\`tsnfs witness\`, or another node); repeat for each
  --rank-after NAME=HOST:PORT  a standby that takes over before this one while it is alive; repeat
  --heartbeat MS --heartbeat-timeout MS   how often to check, and the silence that counts (1000, 5000);
                        with --standby, also this node's heartbeats to its standbys once it has taken over
  --rejoin              the state directory is a former primary's (another node took over): mark
                        every export for a full resync, drop its old change log, become a standby
                        (a fenced state directory rejoins without the flag). What it acknowledged
                        only as UNSTABLE after the standby's last position is discarded
  --standby HOST:PORT   once this node has taken over, replicate to this standby (\`tsnfs standby\`,
                        e.g. the former primary started with --rejoin); repeat for each
  --sync | --async      the mode for those standbys (default sync)
  --metrics HOST:PORT   Prometheus text on http://HOST:PORT/metrics: role, positions, failed exports, peers
`

export async function standby(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    process.stdout.write(STANDBY_USAGE)
    return 0
  }
  const { values } = parseArgs({
    args: argv,
    options: {
      listen: { type: 'string' },
      exports: { type: 'string' },
      'state-dir': { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      node: { type: 'string' },
      cluster: { type: 'string' },
      vip: { type: 'string' },
      'vip-dev': { type: 'string' },
      'on-takeover': { type: 'string' },
      'auto-takeover': { type: 'boolean' },
      primary: { type: 'string' },
      witness: { type: 'string', multiple: true },
      'rank-after': { type: 'string', multiple: true },
      heartbeat: { type: 'string' },
      'heartbeat-timeout': { type: 'string' },
      rejoin: { type: 'boolean' },
      standby: { type: 'string', multiple: true },
      sync: { type: 'boolean' },
      async: { type: 'boolean' },
      metrics: { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
    },
    allowPositionals: false,
  })
  for (const f of ['listen', 'exports', 'state-dir', 'port'] as const) {
    if (values[f] === undefined) throw new Error(`--${f} is required (tsnfs standby --help)`)
  }
  const listen = parseHostPort('listen', values.listen ?? '', true)
  const port = Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port: not a port number: ${String(values.port)}`)
  const metrics = values.metrics === undefined ? undefined : parseMetricsAddress(values.metrics)
  const stateDir = values['state-dir'] ?? ''
  const autoTakeover = autoTakeoverOf(values)
  const asPrimary = asPrimaryOf(values)
  const log = pino({ level: values['log-level'] }, pino.destination(2))
  const ending = { fenced: false }
  const lock = await lockStateDir(stateDir, { port })
  process.once('exit', () => {
    lock.releaseSync()
  })
  const list = await loadExports(values.exports ?? '')
  const identity = identityOf(values)
  const address = serviceAddressOf(values, identity.node, log)
  const node = await StandbyNode.open({
    stateDir,
    ...identity,
    ...(address === undefined ? {} : { address }),
    listen,
    exports: list,
    serve: { port, ...(values.host === undefined ? {} : { host: values.host }), registerRpcbind: false },
    log,
    ...(autoTakeover === undefined ? {} : { autoTakeover }),
    ...(values.rejoin === true ? { rejoin: true } : {}),
    ...(asPrimary === undefined ? {} : { asPrimary }),
    ...(metrics === undefined ? {} : { metrics }),
    onFenced: () => {
      ending.fenced = true
      process.kill(process.pid, 'SIGTERM')
    },
    onServing: (server, epoch) => {
      process.stdout.write(`tsnfs took over (epoch ${String(epoch)}): serving NFSv3 + MOUNT on TCP and UDP port ${String(server.port)}\n`)
    },
  })
  process.stdout.write(`tsnfs standby: replication on ${listen.host}:${String(node.port)}, ${String(list.exports.length)} export(s)\n`)
  if (node.metricsPort !== null && metrics !== undefined) {
    process.stdout.write(`  metrics: http://${metrics.host.includes(':') ? `[${metrics.host}]` : metrics.host}:${String(node.metricsPort)}/metrics\n`)
  }
  await stopSignal(log)
  await node.close()
  log.flush()
  // Fenced after a takeover: another node serves this data now (exit status 3, as `tsnfs serve`).
  return ending.fenced ? 3 : 0
}
