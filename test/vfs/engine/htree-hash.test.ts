/*
 * Our htree hash against e2fsprogs' (debugfs dx_hash): every algorithm and
 * char flavour, random seeds and thousands of random names with bytes >= 0x80
 * (where the signed and unsigned flavours differ), printed seed for replay.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { dxHash, effectiveHashVersion, EXT2_FLAGS_UNSIGNED_HASH, seedWords } from '../../../vfs/engine/format/dx-hash.ts'
import { DX_HASH } from '../../../vfs/engine/format/dirent.ts'
import { FormatError } from '../../../vfs/engine/format/errors.ts'
import { scratch, seededBytes } from './format-helpers.ts'

const NAMES_PER_VERSION = 1500

function uuidOf(b: Buffer): string {
  const h = b.toString('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}

/** A name debugfs' command parser passes through unchanged: no blanks, quotes, backslash, '/', NUL or control bytes. */
function randomName(rand: (n: number) => Buffer): Buffer {
  const r = rand(2)
  const len = (r[0] ?? 0) % 4 === 0 ? 1 + ((r[1] ?? 0) % 255) : 1 + ((r[1] ?? 0) % 40)
  const out = Buffer.alloc(len)
  const raw = rand(len)
  for (let i = 0; i < len; i++) {
    let c = raw[i] ?? 0x41
    if (c <= 0x20 || c === 0x22 || c === 0x27 || c === 0x5c || c === 0x2f || c === 0x7f || c === 0x23) c = 0x61 + (c % 26)
    out[i] = c
  }
  // A leading '-' would be read as an option.
  if (out[0] === 0x2d) out[0] = 0x61
  return out
}

t.test('dx_hash matches debugfs for every version, random seeds and names', (t) => {
  const seed = Number(process.env.HTREE_SEED ?? Date.now() % 2 ** 31)
  t.comment(`seed ${seed} (HTREE_SEED=${seed} to repeat)`)
  const rand = seededBytes(seed)
  const dir = scratch(t, 'dxhash')
  const cmds: string[] = []
  const want: Array<{ name: Buffer; version: number; seed: Buffer }> = []
  for (let version = 0; version <= 5; version++) {
    // One run in six with an all-zero seed: the default seed must apply.
    const hs = version === 2 ? Buffer.alloc(16) : rand(16)
    for (let i = 0; i < NAMES_PER_VERSION; i++) {
      const name = randomName(rand)
      want.push({ name, version, seed: hs })
      cmds.push(`dx_hash -h ${version} -s ${uuidOf(hs)} ${name.toString('latin1')}`)
    }
  }
  const file = path.join(dir, 'cmds')
  fs.writeFileSync(file, Buffer.from(cmds.join('\n') + '\n', 'latin1'))
  const r = spawnSync('debugfs', ['-f', file], { maxBuffer: 64 << 20 })
  t.equal(r.status, 0, 'debugfs ran')
  // Each command is echoed as "debugfs: <command>" and followed by its answer (or its complaint).
  const chunks = r.stdout.toString('latin1').split('debugfs: dx_hash ').slice(1)
  t.equal(chunks.length, want.length, 'one answer per name')
  const lines = chunks.map((c) => c.split('\n').find((l) => l.startsWith('Hash of ')) ?? c)
  let bad = 0
  for (const [i, w] of want.entries()) {
    const m = /is 0x([0-9a-f]+) \(minor 0x([0-9a-f]+)\)$/.exec(lines[i] ?? '')
    const ours = dxHash(w.name, w.version, w.seed)
    if (m === null || parseInt(m[1] ?? '', 16) !== ours.major || parseInt(m[2] ?? '', 16) !== ours.minor) {
      if (bad++ < 5) t.fail(`version ${w.version} name ${w.name.toString('hex')}: debugfs "${lines[i]}", ours ${ours.major.toString(16)}/${ours.minor.toString(16)}`)
    }
  }
  t.equal(bad, 0, `${want.length} hashes agree`)
  t.end()
})

t.test('signed and unsigned flavours differ only on bytes >= 0x80', (t) => {
  const ascii = Buffer.from('plain-ascii-name')
  const high = Buffer.from([0x68, 0xe9, 0x6c, 0x6c, 0x6f])
  for (const v of [DX_HASH.LEGACY, DX_HASH.HALF_MD4, DX_HASH.TEA]) {
    t.same(dxHash(ascii, v), dxHash(ascii, v + 3), `version ${v}: ascii equal`)
    t.not(dxHash(high, v).major, dxHash(high, v + 3).major, `version ${v}: high bytes differ`)
  }
  t.equal(effectiveHashVersion(DX_HASH.HALF_MD4, EXT2_FLAGS_UNSIGNED_HASH), DX_HASH.HALF_MD4_UNSIGNED)
  t.equal(effectiveHashVersion(DX_HASH.HALF_MD4, 1), DX_HASH.HALF_MD4)
  t.same(seedWords(Buffer.alloc(16)), [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476], 'all-zero seed is the default')
  t.end()
})

t.test('siphash and unknown versions are refused with a code', (t) => {
  t.throws(() => dxHash(Buffer.from('x'), DX_HASH.SIPHASH), new FormatError('EXT4_UNSUPPORTED_FEATURE', 'htree hash siphash (casefolded directory; unsupported feature: casefold)'))
  t.throws(() => dxHash(Buffer.from('x'), 9), { code: 'EXT4_CORRUPT', message: 'unknown htree hash version 9' })
  t.end()
})
