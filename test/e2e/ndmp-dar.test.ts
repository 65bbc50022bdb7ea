/*
 * Direct access restore (issue 16 §6) judged by the NDMP SDK's own DMA: `ndmjob -c` backs up an
 * export with a large file to our tape (file history into an -I index), then `ndmjob -x -J index
 * -E DIRECT=y FILE` restores chosen files. Our DATA service must ask (NOTIFY_DATA_READ) for only
 * those members' records: the bytes it read, which it logs, are a small part of the stream.
 * Skipped where ndmjob is not installed (CI installs amanda-server).
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import type { NdmpExport } from '../../server/ndmp/service-types.ts'
import { mkdirp, resolve, writeFile } from '../backup/helpers.ts'
import { haveNdmjob, memExport as mem, NDMJOB, ndmjobText as ndmjob, ndmpWithTape } from '../helpers/ndmjob.ts'

async function readAll(e: NdmpExport, p: string): Promise<Buffer> {
  const ref = await resolve(e.vfs, p)
  const parts: Buffer[] = []
  let off = 0n
  for (;;) {
    const r = await e.vfs.read(ref, off, 65536)
    parts.push(Buffer.from(r.data))
    off += BigInt(r.data.length)
    if (r.eof || r.data.length === 0) break
  }
  return Buffer.concat(parts)
}

if (!haveNdmjob) {
  t.comment(`${NDMJOB} is not installed`)
  t.pass('skipped: no ndmjob')
} else {
  t.test('ndmjob -x -E DIRECT=y reads only the chosen members', async (t) => {
    const dir = t.testdir()
    const exp = mem('/exp')
    const dest = mem('/r')
    const big = Buffer.alloc(16 * 1024 * 1024, 7)
    const files: Record<string, Buffer> = {
      'a.txt': Buffer.from('alpha\n'),
      'big.bin': big,
      'dir/sub/c.txt': Buffer.from('gamma '.repeat(2000)),
      'dir/z.txt': Buffer.from('zeta\n'),
      [`dir/${'long-name-'.repeat(12)}.txt`]: Buffer.from('a pax path header\n'),
    }
    await mkdirp(exp.vfs, 'dir/sub')
    for (const [p, d] of Object.entries(files)) await writeFile(exp.vfs, p, d)
    const { tape, agent } = await ndmpWithTape(t, dir, [exp, dest])
    const index = path.join(dir, 'index')
    const c = await ndmjob(['-c', '-D', agent, '-f', tape, '-C', '/exp', '-I', index, '-v'])
    t.match(c, /Operation ended OKAY/)
    const streamBytes = fs.statSync(tape).size

    const chosen = ['dir/sub/c.txt', 'a.txt', `dir/${'long-name-'.repeat(12)}.txt`]
    const x = await ndmjob(['-x', '-D', agent, '-f', tape, '-C', '/r/one', '-J', index, '-E', 'DIRECT=y', '-v', ...chosen])
    t.match(x, /LOG_FILE messages: 3 OK, 0 ERROR, total 3 of 3/)
    for (const p of chosen) t.ok((await readAll(dest, `one/${p}`)).equals(files[p] ?? Buffer.alloc(0)), `${p}, byte for byte`)
    await t.rejects(resolve(dest.vfs, 'one/big.bin'), { code: 'ENOENT' }, 'nothing else')
    const m = /direct access: (\d+) read\(s\), (\d+) bytes/.exec(x)
    t.ok(m, 'the data service says what it read')
    const read = Number(m?.[2] ?? Infinity)
    t.comment(`stream ${streamBytes} bytes on tape, direct access read ${read}`)
    t.ok(read < 64 * 1024, 'three small members cost a few blocks, not the 16 MiB file')

    // A directory brings its subtree (its members read one by one while below it), not the large file before it.
    const d = await ndmjob(['-x', '-D', agent, '-f', tape, '-C', '/r/dir', '-J', index, '-E', 'DIRECT=y', '-v', 'dir'])
    t.match(d, /LOG_FILE messages: 1 OK, 0 ERROR, total 1 of 1/)
    for (const p of Object.keys(files).filter((f) => f.startsWith('dir/'))) t.ok((await readAll(dest, `dir/${p}`)).equals(files[p] ?? Buffer.alloc(0)), `dir: ${p}`)
    await t.rejects(resolve(dest.vfs, 'dir/big.bin'), { code: 'ENOENT' }, 'dir: nothing else')
    t.ok(Number(/direct access: \d+ read\(s\), (\d+) bytes/.exec(d)?.[1] ?? Infinity) < 64 * 1024, 'a directory costs its subtree\'s records')

    // The large file whole, by its offset, and a directory after it.
    const y = await ndmjob(['-x', '-D', agent, '-f', tape, '-C', '/r/two', '-J', index, '-E', 'DIRECT=y', '-v', 'big.bin', 'dir/sub'])
    t.match(y, /LOG_FILE messages: 2 OK, 0 ERROR, total 2 of 2/)
    t.ok((await readAll(dest, 'two/big.bin')).equals(big), 'big.bin, byte for byte')
    t.ok((await readAll(dest, 'two/dir/sub/c.txt')).equals(files['dir/sub/c.txt'] ?? Buffer.alloc(0)), 'the directory\'s file')
    await t.rejects(resolve(dest.vfs, 'two/a.txt'), { code: 'ENOENT' }, 'nothing else')
    t.match(y, /direct access restore of 2 name/)
  })
}
