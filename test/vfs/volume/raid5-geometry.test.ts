import t from 'tap'
import { planWrite } from '../../../vfs/volume/raid5/geometry.ts'

// A write cut along the stripes (raid5/geometry.ts), 3 members, 4-byte units: a row is 8 bytes.
const N = 3
const UNIT = 4

function cut(offset: number, length: number): { run: [number, number, number] | null; partial: [number, [number, number, number, number][]][] } {
  const data = Buffer.from(Array.from({ length }, (_, i) => i))
  const p = planWrite(offset, data, N, UNIT)
  return {
    // [first stripe, count, first byte of data in the run]
    run: p.run === null ? null : [p.run.first, p.run.count, p.run.data[0] ?? -1],
    // stripe → [dataIndex, start, end, first byte]
    partial: [...p.partial].map(([stripe, pieces]) => [stripe, pieces.map((x) => [x.dataIndex, x.start, x.end, x.data[0] ?? -1] as [number, number, number, number])]),
  }
}

t.test('exact cuts', async (t) => {
  t.strictSame(cut(0, 8), { run: null, partial: [[0, [[0, 0, 4, 0], [1, 0, 4, 4]]]] }, 'one whole row alone is a stripe update, not a run')
  t.strictSame(cut(0, 16), { run: [0, 2, 0], partial: [] }, 'two whole rows: a run, nothing partial')
  t.strictSame(cut(2, 24), { run: [1, 2, 6], partial: [[0, [[0, 2, 4, 0], [1, 0, 4, 2]]], [3, [[0, 0, 2, 22]]]] }, 'partial ends around a run of two rows')
  t.strictSame(cut(5, 2), { run: null, partial: [[0, [[1, 1, 3, 0]]]] }, 'inside one unit')
  t.strictSame(cut(3, 6), { run: null, partial: [[0, [[0, 3, 4, 0], [1, 0, 4, 1]]], [1, [[0, 0, 1, 5]]]] }, 'across a row boundary, no whole row')
})

t.test('every byte lands once, in order, for every offset and length in a few rows', async (t) => {
  const row = (N - 1) * UNIT
  for (let offset = 0; offset < 3 * row; offset++) {
    for (let length = 1; length <= 5 * row; length++) {
      const data = Buffer.from(Array.from({ length }, (_, i) => i % 251))
      const p = planWrite(offset, data, N, UNIT)
      const seen = Buffer.alloc(length, 0xff)
      let covered = 0
      if (p.run !== null) {
        const at = p.run.first * row - offset
        seen.set(p.run.data, at)
        covered += p.run.data.length
        if (p.run.count < 2 || at < 0) t.fail(`run at ${offset}+${length}`)
      }
      for (const [stripe, pieces] of p.partial) {
        for (const x of pieces) {
          const at = stripe * row + x.dataIndex * UNIT + x.start - offset
          seen.set(x.data, at)
          covered += x.end - x.start
        }
      }
      if (covered !== length || !seen.equals(data)) {
        t.fail(`offset ${offset} length ${length}: ${covered} bytes covered`)
        return
      }
    }
  }
  t.pass('every cut covers its write exactly')
})
