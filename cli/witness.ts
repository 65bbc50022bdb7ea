/*
 * tsnfs witness: a third node for --auto-takeover. It holds no data; it
 * watches the primary and tells standbys whether it still sees it
 * (server/replication/witness.ts).
 */
import { parseArgs } from 'node:util'
import { pino } from 'pino'
import { parseWitness } from '../server/replication/quorum-probe.ts'
import { WitnessNode } from '../server/replication/witness.ts'
import { wantsHelp } from './help.ts'
import { identityOf, parseHostPort, parseMs } from './replication-args.ts'
import { stopSignal } from './stop-signal.ts'

export const WITNESS_USAGE = `usage: tsnfs witness --listen HOST:PORT --primary NAME=HOST:PORT [--node NAME]
                     [--heartbeat MS] [--heartbeat-timeout MS] [--log-level LEVEL]
  watch a replication primary for standbys that take over on their own (tsnfs standby
  --auto-takeover --witness NAME=HOST:PORT): heartbeat the primary every --heartbeat ms (1000)
  and report it alive while it answered as primary within --heartbeat-timeout ms (5000).
  Holds no data. SIGINT/SIGTERM stop.
  --listen HOST:PORT        where standbys ask (the replication program's STATUS)
  --primary NAME=HOST:PORT  the primary's node name (its --node) and NFS port
`

export async function witness(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    process.stdout.write(WITNESS_USAGE)
    return 0
  }
  const { values } = parseArgs({
    args: argv,
    options: {
      listen: { type: 'string' },
      primary: { type: 'string' },
      node: { type: 'string' },
      heartbeat: { type: 'string' },
      'heartbeat-timeout': { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
    },
    allowPositionals: false,
  })
  if (values.listen === undefined) throw new Error('--listen is required (tsnfs witness --help)')
  if (values.primary === undefined) throw new Error('--primary is required (tsnfs witness --help)')
  const listen = parseHostPort('listen', values.listen, true)
  const primary = parseWitness(values.primary)
  const heartbeatMs = parseMs('heartbeat', values.heartbeat)
  const timeoutMs = parseMs('heartbeat-timeout', values['heartbeat-timeout'])
  const log = pino({ level: values['log-level'] }, pino.destination(2))
  const node = await WitnessNode.open({
    node: identityOf(values).node,
    primary,
    listen,
    log,
    ...(heartbeatMs === undefined ? {} : { heartbeatMs }),
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
  })
  process.stdout.write(`tsnfs witness: replication on ${listen.host}:${String(node.port)}, watching ${primary.name} at ${primary.host}:${String(primary.port)}\n`)
  await stopSignal(log)
  await node.close()
  log.flush()
  return 0
}
