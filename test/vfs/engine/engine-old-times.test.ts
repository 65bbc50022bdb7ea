/*
 * Times before 1970 on the engine: a restored tar member or a primary's
 * replicated file carries one (NFS cannot send it). The engine keeps it as a
 * large inode holds it (signed seconds plus epoch bits, 1901-12-13 to
 * 2446-05-10) and clamps an earlier one to 1901-12-13, as the kernel does;
 * getattr must answer what the inode holds before and after a reopen, and
 * debugfs must read the same time from the image.
 */
import t from 'tap'
import { execFileSync } from 'node:child_process'
import path from 'node:path'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import { openEngine } from '../../../vfs/engine/fs/assemble.ts'
import { makeFileSystem } from '../../../vfs/engine/mkfs/mkfs.ts'
import { scratch } from './format-helpers.ts'

const owner = { uid: 0, gid: 0 }
const SIXTIES = { sec: -315_619_200, nsec: 250_000_000 }
const BEFORE_1901 = { sec: -(2 ** 31) - 86_400, nsec: 5 }
const CLAMPED = { sec: -(2 ** 31), nsec: 5 }

t.test('a time in 1960 is kept to the ns, one before 1901 clamped; getattr, a reopen and debugfs agree', async (t) => {
  const image = path.join(scratch(t, 'engine-old-times'), 'e.img')
  const dev = await ImageFile.create(image, 16 * 2 ** 20)
  await makeFileSystem(dev, { zeroed: true })
  await dev.close()
  let e = await openEngine(image)
  const f = await e.create(e.root(), Buffer.from('old'), { how: 'guarded', attr: { mode: 0o644 } }, owner)
  const { after } = await e.setattr(f.ref, { mtime: SIXTIES, atime: BEFORE_1901 })
  t.same({ mtime: after.mtime, atime: after.atime }, { mtime: SIXTIES, atime: CLAMPED }, 'the setattr reply: 1960, and 1901-12-13 for the earlier one')
  const got = await e.getattr(f.ref)
  t.same({ mtime: got.mtime, atime: got.atime }, { mtime: SIXTIES, atime: CLAMPED }, 'getattr the same')
  await e.close()
  e = await openEngine(image)
  const again = await e.getattr((await e.lookup(e.root(), Buffer.from('old'))).ref)
  t.same({ mtime: again.mtime, atime: again.atime }, { mtime: SIXTIES, atime: CLAMPED }, 'after a reopen, read from the inode')
  await e.close()
  const stat = execFileSync('debugfs', ['-R', 'stat /old', image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  t.match(stat, /mtime: 0x[0-9a-f]+:[0-9a-f]+ -- Fri Jan {2}1 00:00:00 1960/, 'debugfs reads 1960 from the image')
  t.match(stat, /atime: 0x[0-9a-f]+:[0-9a-f]+ -- Fri Dec 13 20:45:52 1901/, 'and 1901-12-13 20:45:52, the earliest ext4 time')
})
