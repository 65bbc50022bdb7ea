/*
 * Sequential read through the cluster data layer with and without
 * read-ahead (bench/README.md "Cluster backend"). One file of FILE_MIB MiB
 * written once; then, alternating, a fresh ClusterFileData (cold block
 * cache) reads it in order in 1 MiB reads, RUNS times each way.
 *
 *   META=postgres://postgres@127.0.0.1:5432/DB PGPASSWORD=… [DATA=s3] npx tsx bench/cluster-readahead.ts
 *
 * DB must hold an initialized cluster (`tsnfs cluster init`); with DATA=s3
 * the blocks go to radosgw (TSNFS_S3_URL, AWS_* keys, S3_BUCKET), else to
 * the database (data=postgres).
 */
import { PgDb } from '../vfs/cluster/clients/pg-db.ts'
import { PgStore } from '../vfs/cluster/clients/pg-store.ts'
import { S3Store } from '../vfs/cluster/clients/s3-store.ts'
import { createFileData } from '../vfs/cluster/data/file-data.ts'
import type { ObjectStore } from '../vfs/cluster/object-store.ts'
import { TYPE_CODE } from '../vfs/cluster/schema.ts'

const MIB = 1024 * 1024
const fileMiB = Number(process.env['FILE_MIB'] ?? 64)
const runs = Number(process.env['RUNS'] ?? 3)
const meta = process.env['META']
if (meta === undefined) throw new Error('META=postgres://… is required')
const db = new PgDb({ url: meta, ...(process.env['PGPASSWORD'] === undefined ? {} : { password: process.env['PGPASSWORD'] }) })
let store: ObjectStore
if (process.env['DATA'] === 's3') {
  store = new S3Store({
    bucket: process.env['S3_BUCKET'] ?? 'tsnfs-bench-cldata',
    endpoint: process.env['TSNFS_S3_URL'] ?? 'http://127.0.0.1:7480',
    region: process.env['AWS_REGION'] ?? 'us-east-1',
    forcePathStyle: true,
    accessKeyId: process.env['AWS_ACCESS_KEY_ID'] ?? '',
    secretAccessKey: process.env['AWS_SECRET_ACCESS_KEY'] ?? '',
  })
} else {
  store = new PgStore(db)
}
const sid = 900_000_000n + BigInt(process.pid)
const inode = 800_000_000n + BigInt(process.pid)
await db.query(
  `INSERT INTO tsnfs_node (inode, gen, type, mode, uid, gid, nlink, size, atime_sec, atime_nsec, mtime_sec, mtime_nsec, ctime_sec, ctime_nsec)
   VALUES ($1, 1, $2, 420, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0)`,
  [inode, TYPE_CODE.file],
)
const size = fileMiB * MIB
const now = { sec: Math.floor(Date.now() / 1000), nsec: 0 }
const writer = createFileData({ db, store, sid })
const piece = Buffer.alloc(MIB)
for (let off = 0; off < size; off += MIB) {
  piece.fill(off / MIB)
  await writer.write(inode, BigInt(off), piece, 'unstable', now)
}
await writer.flush(inode)
await writer.close()

async function readAll(readAheadBytes: number | undefined): Promise<number> {
  const fd = createFileData({ db, store, sid, ...(readAheadBytes === undefined ? {} : { readAheadBytes }) })
  const t0 = process.hrtime.bigint()
  for (let off = 0; off < size; off += MIB) {
    const got = await fd.read(inode, BigInt(off), MIB, BigInt(size))
    if (got.length !== MIB || got[0] !== off / MIB) throw new Error(`bad data at ${off}`)
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9
  await fd.close()
  return fileMiB / s
}

const off: number[] = []
const on: number[] = []
for (let r = 0; r < runs; r++) {
  off.push(await readAll(0))
  on.push(await readAll(undefined))
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0
console.log(`data=${process.env['DATA'] ?? 'postgres'} file ${fileMiB} MiB, 1 MiB reads, ${runs} runs each, alternating`)
console.log(`read-ahead off: ${off.map((x) => x.toFixed(1)).join(' ')} MiB/s, median ${median(off).toFixed(1)}`)
console.log(`read-ahead on:  ${on.map((x) => x.toFixed(1)).join(' ')} MiB/s, median ${median(on).toFixed(1)}`)
console.log(`on / off: ${(median(on) / median(off)).toFixed(2)}`)
await db.query('DELETE FROM tsnfs_node WHERE inode = $1', [inode])
await db.close()
