/*
 * The file driver: backs up the bytes of one host file (a stream made elsewhere, such as a tar
 * file) onto the pool's tapes. It needs no NDMP agent, so pools, EOM and job control work (and
 * are tested) on any host; levels mean nothing to it (the whole file is copied each time).
 */
import { open } from 'node:fs/promises'
import type { JobContext, JobDriver } from './driver.ts'
import { TapeSink } from '../pool/tape-sink.ts'

const CHUNK = 256 * 1024

export const fileDriver: JobDriver = {
  async backup(ctx: JobContext): Promise<void> {
    if (ctx.spec.kind !== 'file') throw new Error('the file driver backs up file: exports')
    const src = await open(ctx.spec.path, 'r')
    const sink = new TapeSink(ctx.tape)
    try {
      if (ctx.job.level > 0) ctx.log('info', `level ${ctx.job.level}: a file: export is copied whole at every level`)
      const buf = Buffer.alloc(CHUNK)
      let total = 0
      for (;;) {
        ctx.signal.throwIfAborted()
        const { bytesRead } = await src.read(buf, 0, CHUNK, total)
        if (bytesRead === 0) break
        await sink.write(Buffer.from(buf.subarray(0, bytesRead)))
        total += bytesRead
        ctx.progress(total)
      }
      if (total === 0) await sink.write(Buffer.alloc(0))
      ctx.file({ path: ctx.spec.path, type: 'file', size: String(total) })
    } finally {
      await sink.close()
      await src.close()
    }
  },
}
