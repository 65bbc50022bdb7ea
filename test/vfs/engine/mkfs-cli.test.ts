/*
 * tsnfs mkfs from the command line: a new sparse image, refusing an image
 * that holds a file system (exact message) unless --force, formatting an
 * existing file in place, and every refusal of a bad option with its exact
 * message and exit status (2 for usage, 1 for what the device cannot take).
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { scratch, tsnfsRaw } from './format-helpers.ts'
import { dumpe2fs, e2fsck, mkfsCli, superblockOf } from './mkfs-helpers.ts'
import { uuidText } from '../../../vfs/engine/mkfs/probe.ts'

const UUID = '0f0e0d0c-0b0a-4908-8706-050403020100'

t.setTimeout(120_000)

t.test('a new sparse image, refused again without --force, formatted with it', async (t) => {
  const dir = scratch(t, 'mkfs-cli')
  const img = path.join(dir, 'data.img')
  const made = await tsnfsRaw(['mkfs', img, '--size', '64M', '--block-size', '4096', '--label', 'data', '--uuid', UUID])
  t.equal(made.stderr, '')
  t.equal(made.code, 0)
  t.equal(made.stdout.toString(), `${img}: ext4, 16384 blocks of 4096 bytes, 16384 inodes, 1 groups, journal 1024 blocks, UUID ${UUID}\n`)
  const allocated = fs.statSync(img).blocks * 512
  // The journal's 4 MiB are written (allocated on the host, as mkfs.ext4 zeroes it); the rest stays holes.
  t.ok(allocated >= 4 * 1024 * 1024 && allocated < 6 * 1024 * 1024, `sparse but for the journal: ${allocated} bytes allocated of 64 MiB`)
  t.equal(e2fsck(img).status, 0, 'e2fsck -fn clean')
  t.equal(uuidText(superblockOf(img).uuid), UUID)
  t.equal(dumpe2fs(img, true).fields.get('Filesystem volume name'), 'data')
  t.match(dumpe2fs(img, false).groups[0], /\[ITABLE_ZEROED\]/, 'a new sparse file reads as zeros: inode tables marked zeroed')

  const again = await mkfsCli([img])
  t.equal(again.code, 1)
  t.equal(again.stderr, `tsnfs mkfs: ${img} already holds an ext4 file system (UUID ${UUID}); use --force to format it anyway\n`)
  t.equal(uuidText(superblockOf(img).uuid), UUID, 'left untouched')

  const forced = await mkfsCli([img, '--force'])
  t.equal(forced.code, 0, forced.stderr)
  t.not(uuidText(superblockOf(img).uuid), UUID, 'a new file system (new random UUID)')
  t.equal(e2fsck(img).status, 0, 'e2fsck -fn clean after formatting in place')
  t.notMatch(dumpe2fs(img, false).groups[0], /ITABLE_ZEROED/, 'a file with data is not known to read as zeros: no ITABLE_ZEROED')
})

t.test('an existing file: in place at its size, without --force when it holds no file system', async (t) => {
  const dir = scratch(t, 'mkfs-cli')
  const img = path.join(dir, 'junk.img')
  // Old data everywhere the new file system might look: the journal must not replay any of it.
  fs.writeFileSync(img, Buffer.alloc(32 * 1024 * 1024, 0xa5))
  const r = await mkfsCli([img, '--size', String(32 * 1024 * 1024)])
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stdout.split(': ext4, ')[1]?.split(', UUID')[0], '32768 blocks of 1024 bytes, 8192 inodes, 4 groups, journal 4096 blocks')
  t.equal(e2fsck(img).status, 0, 'e2fsck -fn clean over old data')

  const xfs = path.join(dir, 'xfs.img')
  const head = Buffer.alloc(8 * 1024 * 1024)
  head.write('XFSB', 0)
  fs.writeFileSync(xfs, head)
  const refused = await mkfsCli([xfs])
  t.equal(refused.code, 1)
  t.equal(refused.stderr, `tsnfs mkfs: ${xfs} already holds an xfs file system; use --force to format it anyway\n`)
})

t.test('refusals, with exact messages', async (t) => {
  const dir = scratch(t, 'mkfs-cli')
  const img = path.join(dir, 'x.img')
  const usage = (await mkfsCli(['--help'])).stdout
  t.match(usage, /^usage: tsnfs mkfs IMAGE /)
  const cases: Array<[string[], number, string]> = [
    [[img], 2, `tsnfs mkfs: ${img} does not exist; --size is needed to create it\n`],
    [[], 2, `tsnfs mkfs: expected one IMAGE\n${usage}`],
    [[img, 'y.img', '--size', '64M'], 2, `tsnfs mkfs: expected one IMAGE\n${usage}`],
    [[img, '--size', '64X'], 2, `tsnfs mkfs: --size: not a positive multiple of 512 bytes (digits, optionally K, M, G or T): 64X\n${usage}`],
    [[img, '--size', '1000'], 2, `tsnfs mkfs: --size: not a positive multiple of 512 bytes (digits, optionally K, M, G or T): 1000\n${usage}`],
    [[img, '--size', '64M', '--block-size', '2048'], 2, `tsnfs mkfs: --block-size: 1024 or 4096, got 2048\n${usage}`],
    [[img, '--size', '64M', '--bytes-per-inode', '512'], 2, `tsnfs mkfs: --bytes-per-inode: an integer from 1024 to 67108864, got 512\n${usage}`],
    [[img, '--size', '64M', '--journal-blocks', '10'], 2, `tsnfs mkfs: --journal-blocks: an integer from 1024 to 10240000, got 10\n${usage}`],
    [[img, '--size', '64M', '--label', 'seventeen-bytes!!'], 2, `tsnfs mkfs: --label: at most 16 bytes, got 17\n${usage}`],
    [[img, '--size', '64M', '--uuid', 'not-a-uuid'], 2, `tsnfs mkfs: --uuid: not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx): not-a-uuid\n${usage}`],
    [[img, '--size', '64M', '--colour'], 2, `tsnfs mkfs: Unknown option '--colour'. To specify a positional argument starting with a '-', place it at the end of the command after '--', as in '-- "--colour"\n${usage}`],
    [[img, '--size', '1M'], 1, `tsnfs mkfs: ${img}: 1024 blocks is too small for a journal (at least 2048 blocks)\n`],
    [[img, '--size', '64M', '--journal-blocks', '40000'], 1, `tsnfs mkfs: ${img}: a journal of 40000 blocks is more than half of the 60119 free blocks\n`],
    [[img, '--size', '64M', '--journal-blocks', '70000'], 1, `tsnfs mkfs: ${img}: no room for a journal of 70000 blocks\n`],
  ]
  for (const [argv, code, stderr] of cases) {
    const r = await mkfsCli(argv)
    t.equal(r.stderr, stderr, argv.join(' '))
    t.equal(r.code, code, `${argv.join(' ')}: exit ${code}`)
    t.equal(r.stdout, '', 'nothing on stdout')
  }
  t.notOk(fs.existsSync(img), 'a refused or failed mkfs leaves no image behind')

  fs.writeFileSync(img, Buffer.alloc(4096))
  const sized = await mkfsCli([img, '--size', '64M'])
  t.equal(sized.code, 2)
  t.equal(sized.stderr, `tsnfs mkfs: ${img} exists with 4096 bytes; it is formatted at its own size (leave out --size, or remove it first)\n`)
})
