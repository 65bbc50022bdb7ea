/*
 * A node's generation (client/fuse/inodes.ts generationOf): 64 bits of its
 * handle, so that a fileid the server reuses for another object does not
 * look like the old one to the kernel. Handles differing in a single byte,
 * wherever it is, and handles of other lengths get generations of their
 * own. (SHA-256 passed this too; it guards the cheaper hash of session 38.)
 */
import t from 'tap'
import { generationOf } from '../../client/fuse/inodes.ts'

t.test('handles that differ anywhere have distinct generations', async t => {
  const seen = new Set<bigint>()
  let n = 0
  for (const len of [8, 28, 36, 64]) {
    for (let pos = 0; pos < len; pos++) {
      for (let v = 0; v < 256; v++) {
        const fh = Buffer.alloc(len, 0x5a)
        fh[pos] = v
        const g = generationOf(fh)
        seen.add(g)
        n++
      }
    }
  }
  // Each length's base handle (v = 0x5a) appears once per position: the same bytes, the same generation.
  const distinctHandles = n - [8, 28, 36, 64].reduce((s, len) => s + len - 1, 0)
  t.equal(seen.size, distinctHandles, `${distinctHandles} distinct handles, as many generations`)
  t.equal(generationOf(Buffer.from('0102', 'hex')), generationOf(Buffer.from('0102', 'hex')), 'the same handle, the same generation')
})
