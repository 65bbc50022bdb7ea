/*
 * What judging extended attribute blocks costs `tsnfs fsck` (issue 13 item 4): an image made by
 * mkfs.ext4 -d from a tree of empty files each with its own 300-byte attribute (libext2fs gives
 * each its own block; nothing shared), checked read-only by checkImage and by e2fsck -fn, each
 * several times in this process; the medians and their ratio are printed. The tree is made on the
 * temporary directory, which must take user.* attributes (tmpfs does since Linux 6.6).
 *
 *   npx tsx bench/fsck-xattr.ts [--files 20000] [--block-size 4096] [--runs 5] [--json]
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { checkImage } from '../vfs/engine/fsck/check.ts'
import { FileReadAt } from '../vfs/engine/reader/read-at.ts'

const { values } = parseArgs({
  options: {
    files: { type: 'string', default: '20000' },
    'block-size': { type: 'string', default: '4096' },
    runs: { type: 'string', default: '5' },
    json: { type: 'boolean', default: false },
  },
})
const files = Number(values.files)
const bs = Number(values['block-size'])
const runs = Number(values.runs)

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] ?? NaN
}

const dir = fs.mkdtempSync(path.join(tmpdir(), 'tsnfs-bench-fsck-xattr-'))
try {
  const tree = path.join(dir, 'tree')
  fs.mkdirSync(tree)
  // python3: node has no setxattr.
  const py = 'import os,sys\nfor i in range(int(sys.argv[2])):\n    p=os.path.join(sys.argv[1],"f%d"%i)\n    open(p,"w").close()\n    os.setxattr(p,"user.v",(b"%08d"%i)*38)'
  const made = spawnSync('python3', ['-c', py, tree, String(files)], { encoding: 'utf8' })
  if (made.status !== 0) throw new Error(`making the tree: ${made.stderr}`)
  const image = path.join(dir, 'x.img')
  const blocks = Math.ceil(((files + 4096) * bs * 1.3 + (64 << 20)) / bs)
  fs.closeSync(fs.openSync(image, 'w'))
  fs.truncateSync(image, blocks * bs)
  const mk = spawnSync('mkfs.ext4', ['-F', '-q', '-b', String(bs), '-N', String(files + 1024), '-d', tree, image], { encoding: 'utf8' })
  if (mk.status !== 0) throw new Error(`mkfs.ext4: ${mk.stderr}`)
  const ours: number[] = []
  const theirs: number[] = []
  for (let i = 0; i < runs; i++) {
    let t0 = performance.now()
    const dev = await FileReadAt.open(image)
    const r = await checkImage(dev)
    await dev.close()
    ours.push(performance.now() - t0)
    if (!r.clean) throw new Error(`our check is not clean: ${r.problems.slice(0, 3).map((p) => p.message).join('; ')}`)
    t0 = performance.now()
    const e2 = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' })
    theirs.push(performance.now() - t0)
    if (e2.status !== 0) throw new Error(`e2fsck -fn: exit ${e2.status}`)
  }
  const out = { files, blockSize: bs, runs, oursMedianMs: Math.round(median(ours)), e2fsckMedianMs: Math.round(median(theirs)), ratio: +(median(ours) / median(theirs)).toFixed(2), ours: ours.map(Math.round), e2fsck: theirs.map(Math.round) }
  if (values.json) console.log(JSON.stringify(out))
  else console.log(`${files} attribute blocks, ${bs}-byte blocks, ${runs} runs: checkImage median ${out.oursMedianMs} ms, e2fsck -fn median ${out.e2fsckMedianMs} ms (${out.ratio}x)`)
} finally {
  fs.rmSync(dir, { recursive: true, force: true })
}
