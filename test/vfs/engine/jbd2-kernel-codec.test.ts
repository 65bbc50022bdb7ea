import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { openJournal } from '../../../vfs/engine/jbd2/journal-open.ts'
import {
  decodeCommit, decodeDescriptor, decodeRevoke, encodeCommit, encodeDescriptor, encodeRevoke, JBD2_FLAG_ESCAPE, readLogHeader, tagCsum, tailCsumOk,
} from '../../../vfs/engine/jbd2/log-blocks.ts'
import { scanLog } from '../../../vfs/engine/jbd2/recovery.ts'
import { makeImage, withDevice } from './jbd2-helpers.ts'
import { scratch, whyNoLoopMount, withMount } from './format-helpers.ts'

const noLoop = whyNoLoopMount()
if (noLoop !== undefined) t.comment(`skipping: ${noLoop}`)

for (const blockSize of [4096, 1024]) {
  t.test(`the kernel's own log (-b ${blockSize}, loop mount): every block decodes, checks and re-encodes byte for byte`, { skip: noLoop ?? false }, async (t) => {
    const dir = scratch(t, 'jbd2-kcodec')
    const image = await makeImage(dir, 'a.img', blockSize, false)
    await withMount(t, image, (mnt) => {
      // Metadata churn: new directories and files, then removals (freed metadata is revoked).
      for (let i = 0; i < 40; i++) {
        fs.mkdirSync(path.join(mnt, `d${i}`))
        for (let k = 0; k < 20; k++) fs.writeFileSync(path.join(mnt, `d${i}`, `f${k}`), 'x')
      }
      const fd = fs.openSync(path.join(mnt, 'd1', 'f1'), 'r')
      try {
        fs.fsyncSync(fd) // forces a commit, so the removals below land in a later transaction
      } finally {
        fs.closeSync(fd)
      }
      for (let i = 0; i < 40; i += 2) fs.rmSync(path.join(mnt, `d${i}`), { recursive: true })
    })
    // After umount the log is empty (s_start 0) but its blocks are still there from s_first on.
    await withDevice(image, async (dev) => {
      const j = await openJournal(dev)
      const bs = j.map.blockSize
      const read = (b: number): Promise<Buffer> => dev.read(j.map.phys(b) * bs, bs)
      const h = readLogHeader(await read(j.jsb.first))
      if (h === undefined) throw new Error('no log block at s_first')
      const scan = await scanLog(dev, { ...j, jsb: { ...j.jsb, start: j.jsb.first, sequence: h.sequence } })
      t.ok(scan.transactions.length >= 1, `${scan.transactions.length} kernel transactions scanned`)
      t.equal(scan.failedCommit, undefined)
      let tags = 0
      let revokes = 0
      for (const x of scan.transactions) {
        for (const d of x.descriptors) {
          const raw = await read(d.at)
          t.ok(tailCsumOk(j.fmt, raw), `descriptor at ${d.at}: tail checksum`)
          const decoded = decodeDescriptor(j.fmt, raw)
          const logged = []
          for (const [i, tag] of decoded.entries()) {
            const data = await read(j.jsb.first + ((d.first - j.jsb.first + i) % (j.jsb.maxlen - j.jsb.first)))
            if (tagCsum(j.fmt, x.tid, data) !== tag.checksum) t.fail(`tag ${i} of descriptor ${d.at}: checksum`)
            logged.push({ block: tag.block, data, escaped: (tag.flags & JBD2_FLAG_ESCAPE) !== 0 })
            tags++
          }
          t.same(encodeDescriptor(j.fmt, x.tid, logged), raw, `descriptor at ${d.at} re-encodes to the kernel's bytes`)
        }
        for (const at of x.revokeBlocks) {
          const raw = await read(at)
          t.ok(tailCsumOk(j.fmt, raw))
          const blocks = decodeRevoke(j.fmt, raw, `revoke at ${at}`)
          revokes += blocks.length
          t.same(encodeRevoke(j.fmt, x.tid, blocks), raw, `revoke block at ${at} re-encodes`)
        }
        const raw = await read(x.commitAt)
        const c = decodeCommit(j.fmt, raw)
        t.ok(c.checksumOk)
        t.same(encodeCommit(j.fmt, x.tid, c.sec, c.nsec), raw, `commit of ${x.tid} re-encodes`)
      }
      t.ok(tags > 0, `${tags} tags checked, ${revokes} revoke records`)
    })
  })
}
