/*
 * Issue 15 §5/§7 as processes: failback. `tsnfs serve --standby --sync` (A,
 * a local export) and `tsnfs standby --standby A` (B, in memory). A client
 * writes and makes stable without pause; A is SIGKILLed at a random moment
 * (printed seed); B takes over (epoch 2) and the client goes on there; A's
 * state directory is refused as a plain standby, then `tsnfs standby
 * --rejoin` makes A B's standby: B's full resync brings it level; B is
 * SIGKILLed; A takes over (epoch 3): every byte the client ever made stable
 * is there, through the same handles, with the same fileids.
 */
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { createServer as netServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { FILE_SYNC, Nfs3, S, UNSTABLE } from '../helpers/local.ts'
import { prng } from '../helpers/prng.ts'
import { standbyProcess, tempDir } from '../helpers/tsnfs-process.ts'
import type { TsnfsProcess } from '../helpers/tsnfs-process.ts'
import { serveProcess, tsnfs } from '../cli/cli.ts'

interface Stable {
  fh: Buffer
  fileid: bigint | undefined
  data: Buffer
}

async function freePort(): Promise<number> {
  const s = netServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const { port } = s.address() as AddressInfo
  await new Promise((resolve) => s.close(resolve))
  return port
}

/** Polls a process's stderr (pino lines) for `re`. */
async function logged(p: TsnfsProcess, re: RegExp, ms = 60_000): Promise<void> {
  const end = Date.now() + ms
  while (!re.test(p.stderr())) {
    if (Date.now() > end) throw new Error(`no ${String(re)} within ${ms} ms\nstderr: ${p.stderr()}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

t.test('A primary, B standby; A SIGKILLed; B takes over; A rejoins as B\'s standby and resyncs; B SIGKILLed; A takes over: every stable byte, same handles and fileids', async (t) => {
  const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 1_000_000)
  t.comment(`seed ${seed}`)
  const rnd = prng(seed)
  const exportPath = tempDir(t, 'tsnfs-failback-')
  const aState = tempDir(t, 'tsnfs-failback-a-')
  const bState = tempDir(t, 'tsnfs-failback-b-')
  const conf = tempDir(t, 'tsnfs-failback-conf-')
  writeFileSync(join(conf, 'a'), `${exportPath} *(rw,insecure,no_root_squash)\n`)
  // B's copy in memory (a local one would be A's directory on this one host).
  writeFileSync(join(conf, 'b'), `${exportPath} *(rw,insecure,no_root_squash,backend=memory)\n`)
  const aRepl = await freePort()
  const b = await standbyProcess(t, [
    '--listen', '127.0.0.1:0', '--exports', join(conf, 'b'), '--state-dir', bState, '--port', '0', '--host', '127.0.0.1', '--node', 'b',
    '--standby', `127.0.0.1:${String(aRepl)}`, '--sync',
  ])
  const a = await serveProcess(t, [
    '--exports', join(conf, 'a'), '--port', '0', '--host', '127.0.0.1', '--state-dir', aState, '--no-lock', '--admin', 'off',
    '--standby', `127.0.0.1:${String(b.port)}`, '--sync', '--heartbeat', '200', '--node', 'a',
  ])
  await a.waitForLog(/standby joined the sync set/)

  const stable = new Map<string, Stable>()
  /** One writer: each file created, written in pieces, each made stable; only what a reply promised stable counts. */
  const workload = async (nfs: Nfs3, root: Buffer, prefix: string, until: () => boolean, max = Infinity): Promise<void> => {
    for (let n = 0; !until() && n < max; n++) {
      const name = `${prefix}-${String(n)}`
      try {
        const c = await nfs.create(root, name)
        if (c.status !== S.OK || c.fh === undefined) throw new Error(`CREATE ${name}: ${String(c.status)}`)
        const fileid = (await nfs.getattr(c.fh)).fileid
        let data = Buffer.alloc(0)
        const pieces = 1 + Math.floor(rnd() * 3)
        for (let p = 0; p < pieces; p++) {
          const piece = Buffer.alloc(1 + Math.floor(rnd() * 30_000), (n * 7 + p) & 0xff)
          const how = rnd() < 0.5 ? FILE_SYNC : UNSTABLE
          const w = await nfs.write(c.fh, BigInt(data.length), piece, how)
          if (w.status !== S.OK) throw new Error(`WRITE ${name}: ${String(w.status)}`)
          data = Buffer.concat([data, piece])
          if (how === UNSTABLE && (await nfs.commit(c.fh)).status !== S.OK) throw new Error(`COMMIT ${name}`)
          stable.set(name, { fh: c.fh, fileid, data })
        }
      } catch (err) {
        if (!until()) throw err
      }
    }
  }
  const check = async (nfs: Nfs3, what: string): Promise<void> => {
    let stale = 0
    let wrong = 0
    for (const [name, f] of stable) {
      const g = await nfs.getattr(f.fh)
      if (g.status === S.STALE) stale++
      const r = await nfs.read(f.fh, 0n, f.data.length + 1)
      if (g.fileid !== f.fileid || r.status !== S.OK || r.data === undefined || !r.data.subarray(0, f.data.length).equals(f.data)) {
        wrong++
        t.comment(`${what} ${name}: fileid ${String(g.fileid)} (was ${String(f.fileid)}), read ${String(r.status)}, ${String(r.data?.length)} bytes, expected ${String(f.data.length)}`)
      }
    }
    t.equal(stale, 0, `${what}: no ESTALE for any of the ${String(stable.size)} handles`)
    t.equal(wrong, 0, `${what}: same fileids, every stable byte`)
  }

  // Epoch 1 on A, SIGKILLed mid-workload.
  const one = await Nfs3.connect(t, a.port)
  const root = await one.mount(exportPath)
  const killAfterMs = 300 + Math.floor(rnd() * 1200)
  // The clock starts once one file is stable: on a loaded host the first create, write and commit (each
  // waiting for B) took more than 406 ms (TSNFS_SEED=38237, once in six runs), leaving nothing to check.
  await workload(one, root, 'e1-first', () => false, 1)
  t.comment(`A SIGKILLed ${String(killAfterMs)} ms after the first file was stable`)
  let killed = false
  setTimeout(() => {
    a.child.kill('SIGKILL')
    killed = true
  }, killAfterMs)
  await workload(one, root, 'e1', () => killed)
  await a.exit
  one.c.close()
  t.ok(stable.size > 0, `${String(stable.size)} files made stable on A`)

  // B takes over (epoch 2); the client goes on there.
  const tookB = await tsnfs(['replication', 'takeover', `127.0.0.1:${String(b.port)}`, '--force'])
  t.equal(tookB.code, 0, `takeover B: ${tookB.stdout}${tookB.stderr}`)
  const mb = await b.waitFor(/took over \(epoch (\d+)\): serving NFSv3 \+ MOUNT on TCP and UDP port (\d+)/)
  t.equal(mb[1], '2', 'B serves epoch 2')
  const two = await Nfs3.connect(t, Number(mb[2]))
  t.ok((await two.mount(exportPath)).equals(root), 'B: the same root handle')
  await check(two, 'B after the takeover')
  await workload(two, root, 'e2', () => false, 20)

  // A's state directory: refused as a plain standby, then rejoined.
  const aArgs = ['--listen', `127.0.0.1:${String(aRepl)}`, '--exports', join(conf, 'a'), '--state-dir', aState, '--port', '0', '--host', '127.0.0.1', '--node', 'a', '--standby', `127.0.0.1:${String(b.port)}`]
  const refused = await tsnfs(['standby', ...aArgs], { timeoutMs: 20_000 })
  t.not(refused.code, 0, 'a former primary\'s state without --rejoin: refused')
  t.match(refused.stderr, /state says it is a primary \(epoch 1\).*--rejoin/, refused.stderr)
  const a2 = await standbyProcess(t, [...aArgs, '--rejoin'], 30_000)
  t.equal(a2.port, aRepl, 'A listens where B looks for it')
  await logged(b, /standby joined the sync set/)
  t.match(b.stderr(), /full resync/, 'B resynced A')
  // Written after A joined B's sync set: its stable reply waited for A.
  await workload(two, root, 'e2-joined', () => false, 10)
  two.c.close()
  const st = await tsnfs(['replication', 'status', `127.0.0.1:${String(aRepl)}`, '--json'])
  t.match(st.stdout, /"role":\s*"standby"/, 'A reports itself a standby')

  // B SIGKILLed; A takes over again (epoch 3).
  b.child.kill('SIGKILL')
  const tookA = await tsnfs(['replication', 'takeover', `127.0.0.1:${String(aRepl)}`, '--force'])
  t.equal(tookA.code, 0, `takeover A: ${tookA.stdout}${tookA.stderr}`)
  const ma = await a2.waitFor(/took over \(epoch (\d+)\): serving NFSv3 \+ MOUNT on TCP and UDP port (\d+)/)
  t.equal(ma[1], '3', 'A serves epoch 3')
  const three = await Nfs3.connect(t, Number(ma[2]))
  t.ok((await three.mount(exportPath)).equals(root), 'A: the same root handle')
  await check(three, 'A after the failback')
  t.equal((await three.create(root, 'after-failback')).status, S.OK, 'A takes writes')
  three.c.close()
})
