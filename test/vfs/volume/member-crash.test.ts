import t from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { RecordingDevice, sectorsTouched } from '../../../vfs/engine/blockdev/recording-device.ts'
import type { CrashState } from '../../../vfs/engine/blockdev/recording-device.ts'
import { validateConfig } from '../../../vfs/volume/config.ts'
import type { MemberSuperblock } from '../../../vfs/volume/member-format.ts'
import { MEMBER_RESERVED } from '../../../vfs/volume/member-format.ts'
import { readMember, writeMember } from '../../../vfs/volume/member-io.ts'

const A = 'aa'.repeat(16)
const B = 'bb'.repeat(16)

/** Seq 2's reason is long, so its copy spans several sectors and a torn write can keep part of it. */
function superblock(seq: number): MemberSuperblock {
  const config = validateConfig({
    version: 1,
    name: `crash${seq}`,
    id: '0f'.repeat(16),
    seq,
    root: { kind: 'mirror', children: [{ kind: 'disk', member: A }, { kind: 'disk', member: B }] },
    members: [{ uuid: A, size: 8192, state: 'ok' }, { uuid: B, size: 8192, state: seq === 1 ? 'ok' : 'failed', reason: 'r'.repeat(seq === 1 ? 1 : 500) }],
    snapshots: [],
    flags: { intentBitmap: false, regionSize: 4096 },
  })
  return { volumeId: config.id, memberUuid: A, memberIndex: 0, dataOffset: MEMBER_RESERVED, dataSize: 8192, seq, config }
}

t.test('a power cut at any point of a superblock update leaves the old or the new configuration, whole', async (t) => {
  const base = new MemoryDevice(2 * MEMBER_RESERVED)
  await writeMember(base, superblock(1))
  const rec = new RecordingDevice(base.clone())
  await writeMember(rec, superblock(2))
  t.equal(rec.flushes.length, 2)
  let states = 0
  for (let k = 0; k <= rec.flushes.length; k++) {
    const pending = rec.pending(k)
    const choices: CrashState[] = []
    // Every subset of the pending writes, and every tear of one of the rest.
    for (let mask = 0; mask < 1 << pending.length; mask++) {
      const apply = pending.flatMap((_, i) => (mask & (1 << i) ? [i] : []))
      choices.push({ flushes: k, apply })
      for (const [i, w] of pending.entries()) {
        if (mask & (1 << i)) continue
        for (let sectors = 1; sectors < sectorsTouched(w, 512); sectors++) choices.push({ flushes: k, apply, torn: { write: i, sectors } })
      }
    }
    for (const state of choices) {
      const read = await readMember(rec.crashState(base, state))
      const seq = read.superblock.seq
      t.strictSame(read.superblock, superblock(seq), `${JSON.stringify(state)}: seq ${seq} whole`)
      // Once copy 0 is durable (flush 1), the update can no longer be lost.
      if (k >= 1) t.equal(seq, 2, `${JSON.stringify(state)}: the first flush made seq 2 durable`)
      states++
    }
  }
  t.comment(`${states} crash states`)
  t.ok(states > 4, 'tears were among them')
})
