/*
 * vfs/replica/id-map-format.ts versions: a version 1 map (before the `logged` checkpoint
 * record) is read and rewritten as version 2 at open, so an older build refuses it by version
 * instead of misreading the new record; a `logged` record in a version 1 file is damage; the
 * checkpoint survives reopen and compaction.
 */
import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import { IdMap } from '../../../vfs/replica/id-map.ts'
import { encodeRecord, header, LOG_FILE, MAP_VERSION, SNAP_FILE } from '../../../vfs/replica/id-map-format.ts'

const ROOT = { id: 2n, gen: 7 }

function setVersion(file: string, version: number): void {
  const b = readFileSync(file)
  b.writeUInt32BE(version, 8)
  b.writeUInt32BE(crc32(b.subarray(0, 20)), 20)
  writeFileSync(file, b)
}

const versionOf = (file: string): number => readFileSync(file).readUInt32BE(8)

t.test('a version 1 map is read and rewritten as version 2', async (t) => {
  const dir = t.testdir()
  const map = await IdMap.open({ dir, root: ROOT, compactRecords: 4 })
  const vids = []
  // Binds and unbinds enough for a compaction: a snapshot and a log both.
  for (let i = 0; i < 12; i++) {
    const v = map.allocate()
    map.bind(v, { id: 100n + BigInt(i), gen: 1 })
    vids.push(v)
    if (i % 2 === 0) map.unbind(v)
    await map.flush()
  }
  await map.close()
  // Nothing but version 1 records in them: what a build before the checkpoints wrote.
  setVersion(join(dir, SNAP_FILE), 1)
  setVersion(join(dir, LOG_FILE), 1)

  const again = await IdMap.open({ dir, root: ROOT })
  t.equal(versionOf(join(dir, SNAP_FILE)), MAP_VERSION, 'the snapshot rewritten as version 2')
  t.equal(versionOf(join(dir, LOG_FILE)), MAP_VERSION, 'and the log')
  for (let i = 0; i < 12; i++) {
    if (i % 2 === 0) t.equal(again.local(vids[i]!), undefined, `unbind ${String(i)} kept`)
    else t.strictSame(again.local(vids[i]!), { id: 100n + BigInt(i), gen: 1 }, `bind ${String(i)} kept`)
  }
  t.equal(again.loggedThrough(), null, 'no checkpoint yet')
  again.logged(41n)
  await again.close()

  const third = await IdMap.open({ dir, root: ROOT, compactRecords: 1 })
  t.equal(third.loggedThrough(), 41n, 'the checkpoint survives reopen')
  third.logged(40n)
  t.equal(third.loggedThrough(), 41n, 'and never moves back')
  third.logged(12n, true)
  t.equal(third.loggedThrough(), 12n, 'unless told to (a log that lost its tail)')
  // Far more records than live binds: this flush compacts, so the checkpoint must be in the snapshot.
  const generation = readFileSync(join(dir, SNAP_FILE)).readBigUInt64BE(12)
  for (let i = 0; i < 20; i++) {
    const v = third.allocate()
    third.bind(v, { id: 900n + BigInt(i), gen: 1 })
    third.unbind(v)
  }
  await third.flush()
  await third.close()
  t.ok(readFileSync(join(dir, SNAP_FILE)).readBigUInt64BE(12) > generation, 'a new snapshot was written')
  const fourth = await IdMap.open({ dir, root: ROOT })
  t.equal(fourth.loggedThrough(), 12n, 'the checkpoint survives compaction')
  fourth.setEpoch(2)
  t.equal(fourth.loggedThrough(), null, "another epoch's log: the checkpoint does not apply")
  await fourth.close()
})

t.test('a logged record in a version 1 file is damage', async (t) => {
  const dir = t.testdir()
  const log = header(0n)
  log.writeUInt32BE(1, 8)
  log.writeUInt32BE(crc32(log.subarray(0, 20)), 20)
  writeFileSync(join(dir, LOG_FILE), Buffer.concat([log, encodeRecord({ kind: 'logged', epoch: 1, seq: 5n }), encodeRecord({ kind: 'unbind', vid: 9n })]))
  await t.rejects(IdMap.open({ dir, root: ROOT }), { code: 'EIO', message: /map\.log: unknown record kind 5 at offset 24/ })
})
