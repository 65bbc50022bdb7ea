/*
 * The NDMP job driver (issue 16 §4): the DMA's side of a backup, v4 messages (v3 with an agent
 * that offers no more, or whose ndmp-auth line says v3: dma/ndmp/v3.ts). The tape agent
 * (the export's own agent, or `tape=HOST:PORT`: three-way) opens the pool's tape file and its
 * mover listens; the data agent connects to it (ADDR_LOCAL when one agent does both) and backs
 * up FILESYSTEM at LEVEL. A `file:` export with a tape agent has no data agent: the DMA streams
 * the file into the mover itself. The mover pausing at end of medium is a tape change: the job
 * pauses "needs next tape" and, continued, the next tape is opened and the mover continued.
 * The backup ends when the mover (and the data service) halt; DATA_STOP / MOVER_STOP / TAPE_CLOSE
 * then put the agents back to idle (draft-skardal-ndmpv4-04 §3.4, §3.5). A halt or pause whose post
 * never came is read from the agents' states after a quiet spell (dma/ndmp/lost-posts.ts).
 */
import { open } from 'node:fs/promises'
import { connect } from 'node:net'
import * as v4 from '../xdr/generated/ndmp4.ts'
import type { JobContext, JobDriver } from './drivers/driver.ts'
import { NdmpAgent } from './ndmp/agent.ts'
import type { JobEvent } from './ndmp/posts.ts'
import { takePost } from './ndmp/posts.ts'
import { eventsFromState } from './ndmp/lost-posts.ts'
import type { LastLook } from './ndmp/lost-posts.ts'
import { hostPort } from './schedule/export-spec.ts'

function ipv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.')
}

/** Streams a host file into the mover's data connection (a `file:` export: the DMA is the data source). */
async function streamFile(path: string, addr: v4.ndmp4_addr, fallbackHost: string, signal: AbortSignal): Promise<void> {
  if (addr.addr_type !== v4.ndmp4_addr_type.NDMP4_ADDR_TCP || addr.tcp_addr[0] === undefined) throw new Error('the mover did not listen on TCP')
  const a = addr.tcp_addr[0]
  // ndmp4_tcp_addr's port is a u_long on the wire: one no TCP port can be is the agent's error (net.connect would throw a RangeError).
  if (a.port < 1 || a.port > 65535) throw new Error(`the mover listens at port ${a.port}, which is no TCP port`)
  const host = a.ip_addr === 0 ? fallbackHost : ipv4(a.ip_addr)
  const fh = await open(path, 'r')
  const sock = connect({ host, port: a.port })
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve)
      sock.once('error', reject)
    })
    const buf = Buffer.alloc(256 * 1024)
    for (let pos = 0; ; ) {
      signal.throwIfAborted()
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos)
      if (bytesRead === 0) break
      pos += bytesRead
      // Backpressure: wait for the socket to drain when the mover is slower (or paused for a tape).
      if (!sock.write(Buffer.from(buf.subarray(0, bytesRead)))) {
        await new Promise<void>((resolve, reject) => {
          sock.once('drain', resolve)
          sock.once('close', () => { reject(new Error('the mover closed the data connection')); })
        })
      }
    }
    await new Promise<void>((resolve) => sock.end(resolve))
  } finally {
    await fh.close()
    sock.destroy()
  }
}

export interface NdmpDriverOptions {
  /** Per NDMP call (default: the connection's, 30 s). */
  timeoutMs?: number
}

export function ndmpDriver(stateDir: string, options: NdmpDriverOptions = {}): JobDriver {
  return {
    async backup(ctx: JobContext): Promise<void> {
      const spec = ctx.spec
      const tapeAt = ctx.tapeAgent !== undefined ? hostPort(ctx.tapeAgent) : spec.kind === 'ndmp' ? { host: spec.host, port: spec.port } : null
      if (tapeAt === null) throw new Error('a file: export goes through NDMP only with a tape agent (tape=HOST:PORT)')
      const tape = await NdmpAgent.forDma(stateDir, tapeAt.host, tapeAt.port, options.timeoutMs)
      const same = spec.kind === 'ndmp' && spec.host === tapeAt.host && spec.port === tapeAt.port
      let data: NdmpAgent | null = null
      try {
        if (spec.kind === 'ndmp') data = same ? tape : await NdmpAgent.forDma(stateDir, spec.host, spec.port, options.timeoutMs)
        await run(ctx, tape, data, tapeAt.host)
      } finally {
        await tape.close().catch(() => undefined)
        if (data !== null && data !== tape) await data.close().catch(() => undefined)
      }
    },
  }
}

async function run(ctx: JobContext, tape: NdmpAgent, data: NdmpAgent | null, tapeHost: string): Promise<void> {
  const events: JobEvent[] = []
  let wake: (() => void) | null = null
  const push = (e: JobEvent | null): void => {
    if (e === null) return
    events.push(e)
    wake?.()
  }
  tape.onPost((p) => {
    push(takePost(p, ctx, tape))
  })
  if (data !== null && data !== tape) data.onPost((p) => {
    push(takePost(p, ctx, data))
  })
  const onAbort = (): void => {
    void data?.dataAbort().catch(() => undefined)
    void tape.moverAbort().catch(() => undefined)
  }
  ctx.signal.addEventListener('abort', onAbort, { once: true })
  let onTape = await ctx.tape.first()
  let before = 0n
  await tape.tapeOpen(onTape.path)
  try {
    const addr = await tape.moverListen(data === tape ? 'local' : 'tcp')
    let source: Promise<void> = Promise.resolve()
    const stream = { failed: false }
    if (data !== null) {
      await data.dataConnect(addr)
      const spec = ctx.spec
      const env: Record<string, string> = { FILESYSTEM: spec.kind === 'ndmp' ? spec.filesystem : '/', LEVEL: String(ctx.job.level), UPDATE: 'y', HIST: 'y', TYPE: 'tar' }
      if (ctx.compress !== undefined) env['COMPRESS'] = ctx.compress
      ctx.exclude.forEach((g, i) => {
        env[i === 0 ? 'EXCLUDE' : `EXCLUDE.${i}`] = g
      })
      await data.dataStartBackup(env)
    } else if (ctx.spec.kind === 'file') {
      source = streamFile(ctx.spec.path, addr, tapeHost, ctx.signal)
      // A stream that fails leaves the mover listening, with no halt to wait for: it ends the wait.
      source.catch(() => {
        stream.failed = true
        wake?.()
      })
    }
    let moverHalt: number | null = null
    let dataHalt: number | null = data === null ? v4.ndmp4_data_halt_reason.NDMP4_DATA_HALT_SUCCESSFUL : null
    const last: LastLook = { moved: null, processed: null }
    while (moverHalt === null || dataHalt === null) {
      const e = events.shift()
      if (e === undefined) {
        let timer: NodeJS.Timeout | undefined
        const woke = await new Promise<boolean>((resolve) => {
          wake = () => { resolve(true) }
          timer = setTimeout(() => { resolve(false) }, tape.conn.timeoutMs)
        })
        clearTimeout(timer)
        wake = null
        // The stream failed: its error is the job's.
        if (stream.failed) await source
        // A quiet spell: a post lost or undecodable (lost-posts.ts); the states say what it said.
        if (!woke && events.length === 0) events.push(...(await eventsFromState(moverHalt === null ? tape : null, dataHalt === null ? data : null, last)).events)
        continue
      }
      if (e.kind === 'mover-halted') moverHalt = e.reason
      else if (e.kind === 'data-halted') dataHalt = e.reason
      else if (e.reason === v4.ndmp4_mover_pause_reason.NDMP4_MOVER_PAUSE_EOM || e.reason === v4.ndmp4_mover_pause_reason.NDMP4_MOVER_PAUSE_EOW) {
        // End of medium: close this tape, wait (paused) for the next, open it and let the mover go on.
        const moved = (await tape.moverState()).bytes_moved
        ctx.progress(Number(moved))
        await tape.tapeClose()
        onTape = await ctx.tape.next(Number(moved - before))
        before = moved
        await tape.tapeOpen(onTape.path)
        await tape.moverContinue()
      } else {
        throw new Error(`the mover paused (reason ${v4.ndmp4_mover_pause_reasonNames[e.reason] ?? e.reason}) where the DMA cannot go on`)
      }
    }
    await source
    const st = await tape.moverState()
    ctx.progress(Number(st.bytes_moved))
    await ctx.tape.wrote(Number(st.bytes_moved - before))
    ctx.signal.throwIfAborted()
    if (dataHalt !== v4.ndmp4_data_halt_reason.NDMP4_DATA_HALT_SUCCESSFUL) throw new Error(`the data service halted: ${v4.ndmp4_data_halt_reasonNames[dataHalt] ?? dataHalt}`)
    // With a data agent the mover halts once the data side closed its connection; so does our own stream's end.
    if (moverHalt !== v4.ndmp4_mover_halt_reason.NDMP4_MOVER_HALT_CONNECT_CLOSED) throw new Error(`the mover halted: ${v4.ndmp4_mover_halt_reasonNames[moverHalt] ?? moverHalt}`)
  } finally {
    ctx.signal.removeEventListener('abort', onAbort)
    if (data !== null) await data.dataStop().catch(() => undefined)
    await tape.moverStop().catch(() => undefined)
    await tape.tapeClose().catch(() => undefined)
  }
}
