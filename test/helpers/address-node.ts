/*
 * A node's address steps (server/replication/address.ts) run inside a lab
 * host (netns.ts), as a node process there would run them. Run with
 * `node --import tsx`; reads one JSON request a line on stdin:
 *   { "op": "takeover" | "fenced", "epoch": "N", "options": {...ServiceAddressOptions but log} }
 * and writes one JSON line: { "results": StepResult[], "logs": [{ level, msg, obj }] }.
 */
import { createInterface } from 'node:readline'
import type { LogFn, Logger } from '../../server/logger.ts'
import { ServiceAddress } from '../../server/replication/address.ts'
import type { ServiceAddressOptions } from '../../server/replication/address.ts'

export interface AddressRequest {
  op: 'takeover' | 'fenced'
  epoch: string
  options: Omit<ServiceAddressOptions, 'log'>
}

export interface LogEntry {
  level: string
  msg: string
  obj: Record<string, unknown>
}

function collectingLogger(into: LogEntry[]): Logger {
  const at =
    (level: string): LogFn =>
    (a: object | string, msg?: string) => {
      if (typeof a === 'string') into.push({ level, msg: a, obj: {} })
      else into.push({ level, msg: msg ?? '', obj: a as Record<string, unknown> })
    }
  const log: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => log }
  return log
}

createInterface({ input: process.stdin }).on('line', (line) => {
  const req = JSON.parse(line) as AddressRequest
  const logs: LogEntry[] = []
  const node = new ServiceAddress({ ...req.options, log: collectingLogger(logs) })
  const epoch = BigInt(req.epoch)
  void (req.op === 'takeover' ? node.takeover(epoch) : node.fenced(epoch)).then((results) => {
    process.stdout.write(`${JSON.stringify({ results, logs })}\n`)
  })
})
process.stdout.write('ready\n')
