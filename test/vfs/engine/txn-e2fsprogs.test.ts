import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { SUPERBLOCK_CHECKSUM_OFFSET, SUPERBLOCK_OFFSET } from '../../../vfs/engine/format/superblock.ts'
import { superblockCsum } from '../../../vfs/engine/reader/csum-verifier.ts'
import { JournaledTxnManager } from '../../../vfs/engine/txn/journaled-txn.ts'
import { mkfs, sh } from './format-helpers.ts'
import { FakeLog } from './txn-helpers.ts'

const S_VOLUME_NAME = 0x78

// The manager writes home exactly where mkfs.ext4's own blocks are: e2fsprogs judges the result.
for (const bs of [1024, 4096]) {
  t.test(`${bs}-byte blocks: a superblock change committed, checkpointed and closed is what dumpe2fs and e2fsck see`, async (t) => {
    const dir = t.testdir()
    const file = path.join(dir, 'fs.img')
    mkfs(file, 16 * 1024 * 1024, ['-b', String(bs), '-O', 'metadata_csum,64bit', '-E', 'lazy_itable_init=0'])
    const dev = MemoryDevice.fromBuffer(fs.readFileSync(file))
    const log = new FakeLog({ capacity: 100 })
    const mgr = new JournaledTxnManager(dev, log, { blockSize: bs, commitIntervalMs: 0, checkpointIntervalMs: 0 })
    // The superblock sits at byte 1024: block 1 of a 1 KiB file system, inside block 0 of a 4 KiB one.
    const block = Math.floor(SUPERBLOCK_OFFSET / bs)
    const at = SUPERBLOCK_OFFSET % bs
    const h = await mgr.begin()
    const buf = await h.get(block)
    const sb = buf.subarray(at, at + 1024)
    sb.fill(0, S_VOLUME_NAME, S_VOLUME_NAME + 16)
    sb.write('txn-checkpoint', S_VOLUME_NAME, 'latin1')
    sb.writeUInt32LE(superblockCsum(sb), SUPERBLOCK_CHECKSUM_OFFSET)
    h.dirty(block)
    mgr.end(h)
    await mgr.waitDurable(h.tid)
    t.strictSame([...log.commits[0]!.blocks.keys()], [block])
    await mgr.close()
    t.strictSame(log.events, ['commit 1', 'release 1', 'close'])
    fs.writeFileSync(file, dev.toBuffer())
    t.match(sh('dumpe2fs', ['-h', file]), /Filesystem volume name:\s+txn-checkpoint\n/)
    const fsck = spawnSync('e2fsck', ['-fn', file], { encoding: 'utf8' })
    t.equal(fsck.status, 0, `e2fsck -fn clean: ${fsck.stdout}${fsck.stderr}`)
  })
}
