/*
 * Handle keys (client/cache/own-copy.ts): kept with the copies the caches
 * make, made from the bytes for anyone else's buffer, which its owner may
 * rewrite between calls.
 */
import t from 'tap'
import { AttrCache, handleKey } from '../../client/cache/attr-cache.ts'
import { keyedCopy, ownCopy } from '../../client/cache/own-copy.ts'
import type { fattr3 } from '../../xdr/generated/nfs3.ts'
import { fattr } from '../helpers/fattr.ts'

const attrs = (fileid: bigint): fattr3 => fattr({ fileid })

t.test('a keyed copy keeps the key of the bytes it was made from', async t => {
  const fh = Buffer.from('00aa01bb', 'hex')
  const copy = keyedCopy(fh, handleKey(fh))
  t.equal(handleKey(copy), '00aa01bb')
  t.not(copy, fh, 'a buffer of its own')
  fh[0] = 0xff
  t.equal(handleKey(copy), '00aa01bb', 'the original rewritten: the copy is unchanged, and so is its key')
  t.equal(handleKey(fh), 'ffaa01bb', 'the original is keyed by its bytes now')
  const plain = ownCopy(fh)
  t.equal(handleKey(plain), 'ffaa01bb', 'a plain copy is keyed by its bytes')
})

t.test('a caller\'s buffer rewritten between calls names each handle it held in turn', async t => {
  const c = new AttrCache({ acregminMs: 3000, acregmaxMs: 60_000, acdirminMs: 30_000, acdirmaxMs: 60_000, noac: false, maxEntries: 100, now: () => 0 })
  const fh = Buffer.from('0101', 'hex')
  c.update(fh, attrs(1n))
  t.equal(handleKey(fh), '0101')
  fh.write('0202', 'hex')
  t.equal(handleKey(fh), '0202', 'the same buffer, new bytes: a new key')
  t.equal(c.peek(fh), undefined, 'nothing cached for the handle it holds now')
  c.update(fh, attrs(2n))
  t.equal(c.peek(Buffer.from('0101', 'hex'))?.fileid, 1n, 'the first handle keeps its attributes')
  t.equal(c.peek(Buffer.from('0202', 'hex'))?.fileid, 2n)
})
