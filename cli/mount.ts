/*
 * tsnfs mount [-f] [-o OPTIONS] SOURCE MOUNTPOINT: the export as a local
 * directory through FUSE (client/fuse). Detached by default: the command
 * starts itself again with --foreground in a new session, and returns once
 * that daemon reports on a pipe (fd 3) that the mount is live, or prints
 * why it failed. The daemon unmounts on SIGINT/SIGTERM (lazily if busy) and
 * exits once the kernel has ended the connection and what files held is
 * written; a second signal after the connection ended exits at once.
 */
import { spawn } from 'node:child_process'
import { closeSync, realpathSync, statSync, writeSync } from 'node:fs'
import { pino } from 'pino'
import { NfsClient } from '../client/index.ts'
import { FuseMount } from '../client/fuse/mount.ts'
import { MountOptionError, parseMountOptions, sourceUrl } from '../client/fuse/options.ts'
import { messageOf, parseCommand, UsageError } from './common.ts'

export const MOUNT_USAGE = `usage: tsnfs mount [-f] [-o OPTIONS] SOURCE MOUNTPOINT
  mount an NFSv3 export on a local directory through FUSE (as root)
  SOURCE      host:/export[/path] or nfs://host/export[/path]?options
  -f, --foreground      stay in the foreground (default: detach once mounted)
  -o OPTIONS  comma list: ro, allow_other, rsize=N, wsize=N, actimeo=S, acregmin=S, acregmax=S,
              acdirmin=S, acdirmax=S, noac, port=N, mountport=N, proto=tcp|udp, uid=N, gid=N,
              hard (default), soft, timeo=DECISECONDS, retrans=N, lookupcache=all|positive|none
  --log-level LEVEL     daemon log level (default warn); logs go to stderr (--log-file FILE when detached)
`

const READY_ENV = 'TSNFS_READY_FD'

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

function detach(argv: string[]): Promise<number> {
  const script = process.argv[1] ?? ''
  const child = spawn(process.execPath, [...process.execArgv, script, 'mount', '--foreground', ...argv], {
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
    env: { ...process.env, [READY_ENV]: '3' },
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

async function serveMount(source: string, mountpoint: string, optionLists: string[], level: string, logFile: string | undefined): Promise<number> {
  const log = pino({ level }, logFile === undefined ? pino.destination(2) : pino.destination({ dest: logFile, mkdir: true, append: true }))
  const opts = parseMountOptions(optionLists)
  if (!statSync(mountpoint).isDirectory()) throw new UsageError(`${mountpoint}: not a directory`)
  // The daemon's log gets the hard mount's "server not responding" and "OK" lines.
  const client = await NfsClient.mount(sourceUrl(source), { ...opts.client, log })
  let m: FuseMount
  try {
    const root = await client.resolve(client.path)
    m = await FuseMount.mount(client, root.fh, { source, mountpoint, allowOther: opts.allowOther, readOnly: opts.readOnly, log })
  } catch (err) {
    await client.umount().catch(() => undefined)
    throw err
  }
  let ended = false
  let stopping = false
  const onSignal = (sig: string): void => {
    if (ended) process.exit(1)
    if (stopping) return
    stopping = true
    log.info({ sig }, 'unmounting')
    void m.unmount().catch(() => m.unmount({ lazy: true })).catch((err: unknown) => {
      log.error({ err }, 'umount failed')
      stopping = false
    })
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  report(`ready ${String(process.pid)}`)
  const why = await m.ended
  ended = true
  log.info({ why, requests: m.session.counts }, 'connection ended')
  try {
    await m.finish()
  } catch (err) {
    log.error({ err }, 'writing out at unmount failed')
    return 1
  }
  return 0
}

export async function mount(argv: string[]): Promise<number> {
  if (argv.includes('--help')) {
    process.stdout.write(MOUNT_USAGE)
    return 0
  }
  let positionals: string[]
  let values: { foreground?: boolean; o?: string[]; 'log-level'?: string; 'log-file'?: string }
  try {
    ;({ values, positionals } = parseCommand(argv, {
      foreground: { type: 'boolean', short: 'f' },
      o: { type: 'string', short: 'o', multiple: true },
      'log-level': { type: 'string' },
      'log-file': { type: 'string' },
    }))
    if (positionals.length !== 2) throw new UsageError('expected SOURCE and MOUNTPOINT')
    parseMountOptions(values.o ?? [])
  } catch (err) {
    if (!(err instanceof UsageError || err instanceof MountOptionError)) throw err
    process.stderr.write(`tsnfs mount: ${err.message}\n${MOUNT_USAGE}`)
    return 2
  }
  const [source = '', target = ''] = positionals
  if (values.foreground !== true) return detach(argv)
  let code: number
  try {
    code = await serveMount(source, realpathSync(target), values.o ?? [], values['log-level'] ?? 'warn', values['log-file'])
  } catch (err) {
    const msg = messageOf(err)
    report(`error: ${msg}`)
    process.stderr.write(`tsnfs mount: ${msg}\n`)
    code = 1
  }
  // The connection is over (or never began): nothing can hang on /dev/fuse now.
  process.exit(code)
}
