/*
 * tsnfs showmount: nfs-utils showmount over our RPC client. MOUNT EXPORT
 * (RFC 1813 §5.2.5) for -e, DUMP (§5.2.2) for -a, -d and the default host
 * list. MOUNT's port comes from the portmapper (PMAPPROC_GETPORT, on 111 or
 * HOST:PORT), or is given with --port for servers answering everything on one port.
 */
import { parseArgs } from 'node:util'
import { atEndpoint, hostPort } from '../client/errors.ts'
import { RpcTcpClient } from '../client/rpc/tcp-client.ts'
import { MOUNT_PROGRAM } from '../xdr/generated/mount.ts'
import type { exportnode, mountbody } from '../xdr/generated/mount.ts'
import { IPPROTO_TCP, PMAP_PORT, PMAP_PROG } from '../xdr/generated/portmap.ts'

const MOUNT3 = MOUNT_PROGRAM.versions.MOUNT_V3
const PMAP2 = PMAP_PROG.versions.PMAP_VERS

export const SHOWMOUNT_USAGE = `usage: tsnfs showmount [-e | -a | -d] [--port N] [--timeout MS] HOST[:PORT]
  -e  the export list          -a  all mount points (host:dir)      -d  mounted directories
  (default: the hosts that have mounts)
  HOST[:PORT]  the portmapper to ask for MOUNT (port 111 unless given)
  --port N     MOUNT is on port N: ask no portmapper
`

export async function showmount(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      exports: { type: 'boolean', short: 'e' },
      all: { type: 'boolean', short: 'a' },
      directories: { type: 'boolean', short: 'd' },
      port: { type: 'string' },
      timeout: { type: 'string', default: '10000' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: true,
  })
  if (values.help === true) {
    process.stdout.write(SHOWMOUNT_USAGE)
    return 0
  }
  const [target, ...extra] = positionals
  if (target === undefined || extra.length > 0) {
    process.stderr.write(SHOWMOUNT_USAGE)
    return 2
  }
  const { host, port: pmapPort } = splitHostPort(target)
  const timeoutMs = Number(values.timeout)
  const mountPort = values.port === undefined ? await askPortmapper(host, pmapPort ?? PMAP_PORT, timeoutMs) : checkedPort(values.port)
  const c = await RpcTcpClient.connect(host, mountPort, { timeoutMs, cred: 'none' }).catch((err: unknown) => {
    throw atEndpoint('MOUNT', host, mountPort, 'tcp', err)
  })
  try {
    if (values.exports === true) {
      process.stdout.write(formatExports(host, await c.call(MOUNT_PROGRAM.prog, MOUNT3.vers, MOUNT3.procs.MOUNTPROC3_EXPORT, undefined)))
    } else {
      const mode = values.all === true ? 'all' : values.directories === true ? 'directories' : 'hosts'
      process.stdout.write(formatMounts(host, mode, await c.call(MOUNT_PROGRAM.prog, MOUNT3.vers, MOUNT3.procs.MOUNTPROC3_DUMP, undefined)))
    }
  } finally {
    await c.close()
  }
  return 0
}

async function askPortmapper(host: string, port: number, timeoutMs: number): Promise<number> {
  let p: number
  try {
    const pm = await RpcTcpClient.connect(host, port, { timeoutMs, cred: 'none' })
    try {
      p = await pm.call(PMAP_PROG.prog, PMAP2.vers, PMAP2.procs.PMAPPROC_GETPORT, { prog: MOUNT_PROGRAM.prog, vers: MOUNT3.vers, prot: IPPROTO_TCP, port: 0 })
    } finally {
      await pm.close()
    }
  } catch (err) {
    throw atEndpoint('portmapper', host, port, 'tcp', err)
  }
  if (p === 0) throw new Error(`portmapper at ${hostPort(host, port)}: MOUNT version 3 over tcp is not registered`)
  return p
}

/** As nfs-utils prints it: paths padded to the longest, groups joined by commas, or "(everyone)". */
export function formatExports(host: string, list: readonly exportnode[]): string {
  const width = Math.max(0, ...list.map((e) => e.ex_dir.toString('utf8').length))
  const lines = list.map((e) => {
    const groups = e.ex_groups.map((g) => g.gr_name.toString('utf8')).join(',')
    return `${e.ex_dir.toString('utf8').padEnd(width)} ${groups === '' ? '(everyone)' : groups}`
  })
  return `Export list for ${host}:\n${lines.map((l) => `${l}\n`).join('')}`
}

export function formatMounts(host: string, mode: 'all' | 'directories' | 'hosts', list: readonly mountbody[]): string {
  const items = list.map((m) => ({ host: m.ml_hostname.toString('utf8'), dir: m.ml_directory.toString('utf8') }))
  const [title, text] =
    mode === 'all'
      ? ['All mount points on', items.map((m) => `${m.host}:${m.dir}`)]
      : mode === 'directories'
        ? ['Directories on', items.map((m) => m.dir)]
        : ['Hosts on', items.map((m) => m.host)]
  const unique = [...new Set(text)].sort()
  return `${title} ${host}:\n${unique.map((l) => `${l}\n`).join('')}`
}

/** HOST, HOST:PORT, [V6]:PORT or a bare IPv6 address. */
export function splitHostPort(text: string): { host: string; port: number | undefined } {
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(text)
  if (bracket !== null) return { host: bracket[1] ?? '', port: bracket[2] === undefined ? undefined : checkedPort(bracket[2]) }
  const colons = text.split(':').length - 1
  if (colons !== 1) return { host: text, port: undefined }
  const [host = '', port = ''] = text.split(':')
  return { host, port: checkedPort(port) }
}

function checkedPort(text: string): number {
  const n = Number(text)
  if (!/^\d+$/.test(text) || n < 1 || n > 65535) throw new Error(`not a port number: ${text}`)
  return n
}
