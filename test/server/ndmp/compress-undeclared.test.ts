/*
 * A compressed backup restored by direct access by a DMA that does not say COMPRESS (issue 16):
 * the fh_info offsets are the plain stream's, so without a look at the stream the data service
 * would seek by them in the compressed one (ndmjob's -x stopped with "the mover sent 0 of 512
 * bytes asked for" past the compressed tape's end). With DIRECT=y and no COMPRESS in the recover
 * env, it asks for the stream's first block: gzip (its magic) or brotli (it inflates to a tar
 * header) is read whole from there; plain tar is restored by direct access as asked. ndmjob is the
 * DMA; its index's "DE COMPRESS" line (the env our DATA_GET_ENV gave it) is taken out, as a DMA
 * that keeps only the env it sent would have it. Its table of contents (-t), which sends no env
 * of the backup, lists each.
 * TSNFS_SEED repeats the random blocks of the first test.
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import zlib from 'node:zlib'
import { sniffStreamStart } from '../../../backup/compress.ts'
import { driversFor } from '../../../dma/drivers/select.ts'
import { DmaService } from '../../../dma/jobs/service.ts'
import { Pool } from '../../../dma/pool/pool.ts'
import { restoreExport } from '../../../dma/restore/run.ts'
import { parseExport } from '../../../dma/schedule/export-spec.ts'
import { encodeHeader, TYPE } from '../../../backup/tar/header.ts'
import type { HeaderFields } from '../../../backup/tar/header.ts'
import { parseRecoverEnv } from '../../../server/ndmp/data/env.ts'
import { startNdmpServer } from '../../../server/ndmp/server.ts'
import { mkdirp, snapshotTree, writeFile as vfsWrite } from '../../backup/helpers.ts'
import { haveNdmjob, memExport as mem, NDMJOB, ndmpWithTape, runNdmjob } from '../../helpers/ndmjob.ts'
import { prngU32 } from '../../helpers/prng.ts'

const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 100000)
t.comment(`seed ${seed}`)

function header(name: string, type: number, size: bigint): Buffer {
  const h: HeaderFields = { name: Buffer.from(name), mode: 0o644, uid: 0, gid: 0, size, mtime: 1_796_500_000, type, linkname: Buffer.alloc(0), uname: 'root', gname: 'root', devmajor: 0, devminor: 0, prefix: Buffer.alloc(0) }
  return encodeHeader(h)
}

t.test('sniffStreamStart judges a stream by its first block', async (t) => {
  const root = header('./', TYPE.dir, 0n)
  const q4 = { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 4 } }
  const zeros = Buffer.concat([root, header('zero.bin', TYPE.file, 64n << 20n), Buffer.alloc(64 << 20)])
  t.equal(await sniffStreamStart(root), 'tar', 'a tar header')
  t.equal(await sniffStreamStart(Buffer.alloc(512)), 'tar', 'a zero block (an empty archive)')
  t.equal(await sniffStreamStart(zlib.gzipSync(zeros).subarray(0, 512)), 'gzip', 'gzip by its magic')
  const br = zlib.brotliCompressSync(zeros, q4)
  t.equal(await sniffStreamStart(br.subarray(0, 512)), 'brotli', `brotli: 64 MiB of zeros in ${br.length} bytes, the decoder stops at a block`)
  // Incompressible bytes after the header: the encoder stores the meta-block, 512 bytes in give 508 out.
  const stored = zlib.brotliCompressSync(Buffer.concat([root, randomBytes(100_000)]), q4)
  t.equal(await sniffStreamStart(stored.subarray(0, 512)), 'brotli', 'brotli, a stored meta-block: the ustar magic decides')
  const next = prngU32(seed)
  let wrong = 0
  for (let i = 0; i < 500; i++) {
    const b = Buffer.alloc(512)
    for (let o = 0; o < 512; o += 4) b.writeUInt32LE(next() >>> 0, o)
    if (b[0] === 0x1f && b[1] === 0x8b) continue
    if ((await sniffStreamStart(b)) !== 'unknown') wrong++
  }
  t.equal(wrong, 0, 'random blocks are none of them')
  const damaged = Buffer.from(root)
  damaged[0] = 0x7e
  t.equal(await sniffStreamStart(damaged), 'unknown', 'a tar header with a bad checksum')
})

async function filled(): Promise<ReturnType<typeof mem>> {
  const exp = mem('/exp')
  await mkdirp(exp.vfs, 'logs')
  await vfsWrite(exp.vfs, 'logs/app.log', Buffer.from('2026-12-05T12:00:00Z INFO request served in 3 ms\n'.repeat(20_000)))
  await vfsWrite(exp.vfs, 'random.bin', randomBytes(200_000))
  await vfsWrite(exp.vfs, 'zz-last.txt', Buffer.from('the last member\n'))
  return exp
}

/** The reads of the same direct access restore with the index as ndmjob wrote it (COMPRESS=none said: no look first). */
async function directReadsWithCompressSaid(agent: string, tape: string, index: string, names: string[]): Promise<number> {
  const x = await runNdmjob(['-x', '-D', agent, '-f', tape, '-C', '/r/said', '-J', index, '-E', 'DIRECT=y', '-v', ...names])
  return Number(/direct access: (\d+) read\(s\)/.exec(x.out)?.[1] ?? NaN)
}

t.test('ndmjob -x -J index -E DIRECT=y, the index without COMPRESS', { skip: haveNdmjob ? false : `${NDMJOB} is not installed` }, async (t) => {
  const dir = t.testdir({})
  const exp = await filled()
  const dest = mem('/r')
  const { tape, agent } = await ndmpWithTape(t, dir, [exp, dest])
  const want = await snapshotTree(exp.vfs)
  const chosen = ['zz-last.txt', 'random.bin']
  for (const how of ['gzip', 'brotli', 'none'] as const) {
    await writeFile(tape, '')
    const index = join(dir, `index-${how}`)
    const c = await runNdmjob(['-c', '-D', agent, '-f', tape, '-C', '/exp', '-I', index, '-E', `COMPRESS=${how}`, '-v'])
    t.match(c, { code: 0, out: /Operation ended OKAY/ }, `${how}: backup`)
    const lines = (await readFile(index, 'utf8')).split('\n')
    t.ok(lines.includes(`DE COMPRESS=${how}`), `${how}: ndmjob kept COMPRESS from DATA_GET_ENV`)
    const stripped = join(dir, `index-${how}-stripped`)
    await writeFile(stripped, lines.filter((l) => !l.startsWith('DE COMPRESS=')).join('\n'))
    const x = await runNdmjob(['-x', '-D', agent, '-f', tape, '-C', `/r/${how}`, '-J', stripped, '-E', 'DIRECT=y', '-v', ...chosen])
    t.match(x, { code: 0, out: /LOG_FILE messages: 2 OK, 0 ERROR, total 2 of 2/ }, `${how}: both names restored`)
    if (how === 'none') {
      t.match(x.out, /direct access restore of 2 name/, 'plain: by direct access, as asked')
      t.notMatch(x.out, /compressed/)
      const m = /direct access: (\d+) read\(s\), (\d+) bytes/.exec(x.out)
      const read = Number(m?.[2] ?? Infinity)
      const chosenReads = await directReadsWithCompressSaid(agent, tape, index, chosen)
      t.equal(Number(m?.[1]), chosenReads + 1, `plain: one read more than with COMPRESS=none said (${chosenReads}): the first block`)
      t.ok(read < 256 * 1024, `plain: the first block and the two members' records (${read} bytes), not the 980 KB log`)
    } else {
      const why = how === 'gzip' ? 'its magic 1f 8b' : 'its first block inflates as brotli to a tar header'
      t.match(x.out, `DIRECT=y: the stream is ${how}-compressed (${why}; the DMA did not say COMPRESS=)`, `${how}: the LOG says what was found`)
      t.notMatch(x.out, /direct access restore of/, `${how}: no seek by offset`)
    }
    // ndmjob -t (DATA_START_RECOVER_FILEHIST) says no COMPRESS either: the listing inflates by itself.
    const toc = await runNdmjob(['-t', '-D', agent, '-f', tape, '-v'])
    t.match(toc, { code: 0, out: /Operation ended OKAY/ }, `${how}: table of contents`)
    t.match(toc.out, /DHd \d+ random\.bin UNIX \d+/, `${how}: it lists random.bin`)
    const back = await snapshotTree(dest.vfs)
    for (const p of chosen) t.equal(back[`${how}/${p}`]?.data, want[p]?.data, `${how}: ${p} restored`)
    t.equal(back[`${how}/logs/app.log`], undefined, `${how}: nothing else`)
  }
})

t.test('the recover env: COMPRESS=none says plain, no COMPRESS says nothing', async (t) => {
  const fs = { name: 'FILESYSTEM', value: '/exp' }
  t.equal(parseRecoverEnv([fs]).compress, null, 'not said: a direct access restore looks first')
  t.equal(parseRecoverEnv([fs, { name: 'COMPRESS', value: 'none' }]).compress, 'none')
  t.equal(parseRecoverEnv([fs, { name: 'COMPRESSION', value: 'n' }]).compress, 'none')
  t.equal(parseRecoverEnv([fs, { name: 'COMPRESS', value: 'br' }]).compress, 'brotli')
})

t.test('our manager says COMPRESS=none for a plain backup: its direct access restore reads no first block', async (t) => {
  const dir = t.testdir({})
  const pool = join(dir, 'pool')
  await Pool.label(pool, 'P1', { capacity: 64 * 1024 * 1024 })
  const exp = await filled()
  const server = await startNdmpServer({ port: 0, host: '127.0.0.1', credentials: new Map([['dma', 'secret']]), exports: () => [exp], tapes: [{ name: pool, path: pool }], stateDir: join(dir, 'srv') })
  t.teardown(() => server.close())
  const state = join(dir, 'state')
  const service = await DmaService.open(state, driversFor(state))
  await writeFile(join(state, 'ndmp-auth'), '127.0.0.1 dma secret\n')
  const job = await service.wait((await service.start({ name: 'manual', spec: parseExport(`127.0.0.1:${server.port}:/exp`), pool, level: 0 })).id)
  t.equal(job.state, 'done', job.error ?? 'done')
  const logs: string[] = []
  const out = await restoreExport({ stateDir: state, export: `127.0.0.1:${server.port}:/exp`, atNs: BigInt(Date.now() + 60_000) * 1_000_000n, paths: ['/zz-last.txt'], to: '/exp/back', overwrite: false, onLog: (_l, m) => logs.push(m) })
  t.equal(out.job.state, 'done', out.job.error ?? logs.join('\n'))
  // The member's header (pax header, then ustar header, in two reads) and its body: no read of offset 0 first.
  t.equal(out.reads, 3, `three NOTIFY_DATA_READs (${out.bytesMoved} bytes moved)`)
  t.equal(out.bytesMoved, 2048n, 'pax header, its body and the ustar header, then one block of data')
  const tree = await snapshotTree(exp.vfs)
  t.equal(tree['back/zz-last.txt']?.data, tree['zz-last.txt']?.data)
})
