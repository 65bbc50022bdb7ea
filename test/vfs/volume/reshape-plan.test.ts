/*
 * The reshape's window arithmetic (vfs/volume/reshape-plan.ts), with exact vectors: which windows
 * a reshape takes, which go through the backup area, where the backup sits, and where a unit lives
 * in the old and new layouts. The safety condition is also checked by brute force over small
 * geometries: no in-place window overwrites an old row still holding a unit not yet copied, or
 * one of its own sources.
 */
import t from 'tap'
import { backupOffset, placeOf, sourceRows, windows } from '../../../vfs/volume/reshape-plan.ts'
import type { ReshapeGeometry, ReshapeKind } from '../../../vfs/volume/reshape-plan.ts'

const K = 4096

t.test('RAID-5 3 to 4 members over 16 rows: two backup rows, then windows of ⌊a / 2⌋ rows', async (t) => {
  const g: ReshapeGeometry = { kind: 'raid5', oldN: 3, unit: K, rows: 16 }
  t.strictSame(windows(g, 100), [
    { from: 0, to: 1, backup: true },
    { from: 1, to: 2, backup: true },
    { from: 2, to: 3, backup: false },
    { from: 3, to: 4, backup: false },
    { from: 4, to: 6, backup: false },
    { from: 6, to: 9, backup: false },
    { from: 9, to: 13, backup: false },
    { from: 13, to: 16, backup: false },
  ])
  t.strictSame(windows(g, 2).map((w) => w.to), [1, 2, 3, 4, 6, 8, 10, 12, 14, 16], 'a cap of 2 rows')
  // Header block and 3 data units: 4 rows at the new member's end.
  t.equal(backupOffset(g), 12 * K)
})

t.test('stripe 2 to 3 members over 8 rows', async (t) => {
  const g: ReshapeGeometry = { kind: 'stripe', oldN: 2, unit: K, rows: 8 }
  t.strictSame(windows(g, 100), [
    { from: 0, to: 1, backup: true },
    { from: 1, to: 2, backup: true },
    { from: 2, to: 3, backup: false },
    { from: 3, to: 4, backup: false },
    { from: 4, to: 6, backup: false },
    { from: 6, to: 8, backup: false },
  ])
  t.equal(backupOffset(g), 4 * K)
  t.strictSame(sourceRows(g, 2, 3), { first: 3, end: 5 }, 'new row 2 holds units 6-8: old rows 3 and 4')
})

t.test('where units live: md left-symmetric over n and n + 1', async (t) => {
  // RAID-5 over 3: row 0 parity on member 2, units 0,1 on members 0,1; row 1 parity on 1, unit 2 on 2, unit 3 on 0.
  t.strictSame([0, 1, 2, 3].map((u) => placeOf('raid5', 3, u)), [{ member: 0, row: 0 }, { member: 1, row: 0 }, { member: 2, row: 1 }, { member: 0, row: 1 }])
  // Over 4: row 0 parity on 3; row 1 parity on 2, units 3,4,5 on members 3,0,1.
  t.strictSame([0, 2, 3, 4, 5].map((u) => placeOf('raid5', 4, u)), [{ member: 0, row: 0 }, { member: 2, row: 0 }, { member: 3, row: 1 }, { member: 0, row: 1 }, { member: 1, row: 1 }])
  t.strictSame([0, 2, 3, 5].map((u) => placeOf('stripe', 3, u)), [{ member: 0, row: 0 }, { member: 2, row: 0 }, { member: 0, row: 1 }, { member: 2, row: 1 }])
})

t.test('too few rows for the backup area is refused with the numbers', async (t) => {
  t.throws(() => backupOffset({ kind: 'raid5', oldN: 3, unit: K, rows: 5 }), {
    code: 'VOLUME_LAYOUT',
    message: 'VOLUME_LAYOUT: a reshape to 4 members needs at least 6 units of 4096 bytes per member (for its backup area), the volume uses 5',
  })
  t.equal(backupOffset({ kind: 'raid5', oldN: 3, unit: K, rows: 6 }), 2 * K)
})

t.test('brute force: every in-place window only overwrites copied rows and reads rows past itself', async (t) => {
  let checked = 0
  const wrong: string[] = []
  for (const kind of ['stripe', 'raid5'] as ReshapeKind[]) {
    for (let oldN = kind === 'raid5' ? 3 : 2; oldN <= 7; oldN++) {
      for (const rows of [oldN * 3, 17, 40]) {
        for (const cap of [1, 3, 1000]) {
          const g: ReshapeGeometry = { kind, oldN, unit: K, rows }
          const dOld = kind === 'raid5' ? oldN - 1 : oldN
          const dNew = dOld + 1
          let prev = 0
          for (const w of windows(g, cap)) {
            if (w.from !== prev) wrong.push(`${kind} ${oldN}/${rows}/${cap}: window at ${w.from} after ${prev}`)
            prev = w.to
            // The units copied before this window, and those it copies.
            const copied = w.from * dNew
            const end = w.to * dNew
            // Old rows [from, to) hold units [from·dOld, to·dOld).
            const overwritten = { first: w.from * dOld, end: w.to * dOld }
            const clobbers = overwritten.end > copied
            const src = sourceRows(g, w.from, w.to)
            const ownSources = src.first < w.to && Math.min(end, rows * dOld) > copied
            if (w.backup && !(clobbers || ownSources)) wrong.push(`${kind} ${oldN}/${rows}/${cap} row ${w.from}: a backup not needed`)
            if (!w.backup && (clobbers || ownSources)) wrong.push(`${kind} ${oldN}/${rows}/${cap} [${w.from}, ${w.to}): in place but unsafe`)
            if (w.backup && w.to - w.from !== 1) wrong.push(`${kind} ${oldN}/${rows}/${cap}: a backup window of ${w.to - w.from} rows`)
            checked++
          }
          if (prev !== rows) wrong.push(`${kind} ${oldN}/${rows}/${cap}: windows end at ${prev}`)
        }
      }
    }
  }
  t.strictSame(wrong, [], `${checked} windows checked`)
  t.ok(checked > 1000)
})
