/*
 * A relay that damages a server's replies on their way to a client (ONC RPC record marking,
 * RFC 5531 §11; NDMP frames its messages the same way): the fuzzes of our NFS client
 * (client-fuzzer.ts), of the replication sender and a whole pair against their standby
 * (sender-fuzzer.ts, pair-fuzzer.ts) and of our DMA against an NDMP server (dma-fuzzer.ts, with
 * NDMP's own lies beside these) put one between the two. Calls pass as they are; each reply
 * record is damaged with the session's probability: bits flipped, cut short, bytes added, a word
 * or a 64-bit field replaced by a value chosen to lie (lengths, counts, statuses), dropped, sent
 * twice, or an earlier reply sent in its place. Seeded: a session's damage repeats.
 */
import { once } from 'node:events'
import { connect, createServer } from 'node:net'
import type { Server, Socket } from 'node:net'
import { RecordReader, frameRecord } from '../../xdr/record.ts'

/** Values a lying server would pick for a 32-bit word: lengths, counts, booleans, statuses. */
const WORDS = [0, 1, 2, 3, 4, 5, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0xffff_fffc, 64, 65, 4096, 1 << 20, 1 << 24, 70, 10002, 10003, 10008]

/** xorshift32: small and seedable; the relay's choices repeat with the session's seed. */
export class Rng {
  #s: number
  constructor(seed: number) {
    this.#s = seed >>> 0 || 0x9e37_79b9
  }

  next(): number {
    let x = this.#s
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    this.#s = x >>> 0
    return this.#s
  }

  below(n: number): number {
    return this.next() % n
  }

  chance(p: number): boolean {
    return this.next() / 0x1_0000_0000 < p
  }

  bytes(n: number): Buffer {
    const b = Buffer.alloc(n)
    for (let i = 0; i < n; i++) b[i] = this.next() & 0xff
    return b
  }
}

/** The records the relay passes on for one reply: it damaged, none (dropped), it twice, or an earlier one instead. */
export function damage(rng: Rng, rec: Buffer, earlier: Buffer[]): Buffer[] {
  const out = Buffer.from(rec)
  const word = (): number => 4 * (1 + rng.below(Math.max(1, (out.length >> 2) - 1)))
  switch (rng.below(8)) {
    case 0:
      for (let i = 0, n = 1 + rng.below(4); i < n && out.length > 4; i++) {
        const at = 4 + rng.below(out.length - 4)
        out[at] = (out[at] ?? 0) ^ (1 << rng.below(8))
      }
      return [out]
    case 1:
      return [out.subarray(0, 4 + rng.below(Math.max(1, out.length - 4)))]
    case 2:
      return [Buffer.concat([out, rng.bytes(1 + rng.below(64))])]
    case 3:
      if (out.length >= 8) out.writeUInt32BE(WORDS[rng.below(WORDS.length)] ?? 0, Math.min(word(), out.length - 4))
      return [out]
    case 4:
      if (out.length >= 12) {
        const at = Math.min(word(), out.length - 8)
        out.writeBigUInt64BE(rng.chance(0.5) ? 0xffff_ffff_ffff_ffffn : BigInt(rng.next()) << 32n | BigInt(rng.next()), at)
      }
      return [out]
    case 5:
      return []
    case 6:
      return [out, out]
    default: {
      const old = earlier[rng.below(Math.max(1, earlier.length))]
      return old === undefined ? [out] : [old]
    }
  }
}

/** What the relay passes on for one reply record (damage() by default; a protocol's own lies beside it). */
export type DamageFn = (rng: Rng, rec: Buffer, earlier: Buffer[]) => Buffer[]

export interface RelayOptions {
  damage?: DamageFn
  /** The largest record either way (a longer one closes the connection): 8 MiB by default. */
  maxCallBytes?: number
  maxReplyBytes?: number
}

/** A TCP relay in front of one server port whose replies are damaged at `rate` (set per session). */
export class DamageRelay {
  /** Reply records seen, and damaged. */
  replies = 0
  damaged = 0
  /** The share of replies damaged (0: none). */
  rate = 0
  #rng = new Rng(1)
  readonly #earlier: Buffer[] = []
  readonly #sockets = new Set<Socket>()
  readonly #server: Server
  readonly #target: number
  readonly #o: RelayOptions

  private constructor(server: Server, target: number, o: RelayOptions) {
    this.#server = server
    this.#target = target
    this.#o = o
  }

  static async start(target: number, o: RelayOptions = {}): Promise<DamageRelay> {
    const server = createServer({ noDelay: true })
    const relay = new DamageRelay(server, target, o)
    server.on('connection', (c) => { relay.#relay1(c) })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    return relay
  }

  get port(): number {
    return (this.#server.address() as { port: number }).port
  }

  /** Relayed connections still open. */
  get openConnections(): number {
    return this.#sockets.size
  }

  /** A session's damage: its seed and its rate. */
  reseed(seed: number, rate: number): void {
    this.#rng = new Rng(seed)
    this.rate = rate
  }

  /** Closes every relayed connection. */
  cut(): void {
    for (const s of this.#sockets) s.destroy()
    this.#sockets.clear()
  }

  async close(): Promise<void> {
    this.cut()
    this.#server.close()
    await once(this.#server, 'close')
  }

  /** One client connection relayed to the server: calls as they are, replies through damage(). */
  #relay1(client: Socket): void {
    const upstream = connect({ port: this.#target, host: '127.0.0.1', noDelay: true })
    this.#sockets.add(client)
    this.#sockets.add(upstream)
    const calls = new RecordReader(this.#o.maxCallBytes ?? 8 * 1024 * 1024)
    const replies = new RecordReader(this.#o.maxReplyBytes ?? 8 * 1024 * 1024)
    const hurt = this.#o.damage ?? damage
    const end = (): void => {
      client.destroy()
      upstream.destroy()
      this.#sockets.delete(client)
      this.#sockets.delete(upstream)
    }
    client.on('data', (chunk: Buffer) => {
      try {
        for (const rec of calls.push(chunk)) upstream.write(Buffer.concat([frameRecord([rec]), rec]))
      } catch {
        end()
      }
    })
    upstream.on('data', (chunk: Buffer) => {
      let recs: Buffer[]
      try {
        recs = replies.push(chunk)
      } catch {
        end()
        return
      }
      for (const raw of recs) {
        const rec = Buffer.from(raw)
        this.replies++
        let send: Buffer[] = [rec]
        if (this.rate > 0 && this.#rng.chance(this.rate)) {
          this.damaged++
          send = hurt(this.#rng, rec, this.#earlier)
        }
        this.#earlier.push(rec)
        if (this.#earlier.length > 16) this.#earlier.shift()
        for (const r of send) client.write(Buffer.concat([frameRecord([r]), r]))
      }
    })
    client.on('error', end)
    upstream.on('error', end)
    client.on('close', end)
    upstream.on('close', end)
  }
}
