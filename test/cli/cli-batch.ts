/*
 * Runs many tsnfs commands one after the other in this one process (run by
 * tsnfsBatch in cli.ts): argv[2] is the dispatcher to load (dist/cli/dispatch.js
 * or cli/dispatch.ts), argv[3] a JSON list of argument lists. Each command's
 * stdout and stderr are captured and its exit code is what cli/main.ts would
 * set; the results go out as one JSON line on the real stdout at the end.
 * For commands whose behaviour, not their process start, is tested (usage).
 */
import { pathToFileURL } from 'node:url'

interface BatchResult {
  code: number
  stdout: string
  stderr: string
}

type Write = typeof process.stdout.write

const [dispatcher, runsJson] = process.argv.slice(2)
if (dispatcher === undefined || runsJson === undefined) throw new Error('usage: cli-batch.ts DISPATCHER RUNS_JSON')
const runs = JSON.parse(runsJson) as string[][]
const { tsnfs } = (await import(pathToFileURL(dispatcher).href)) as { tsnfs: (argv: string[]) => Promise<number> }

/** A write() that keeps the bytes and calls back as a stream would. */
function capture(into: Buffer[]): Write {
  return (chunk: string | Uint8Array, encoding?: BufferEncoding | ((err?: Error | null) => void), cb?: (err?: Error | null) => void): boolean => {
    into.push(typeof chunk === 'string' ? Buffer.from(chunk, typeof encoding === 'string' ? encoding : 'utf8') : Buffer.from(chunk))
    const done = typeof encoding === 'function' ? encoding : cb
    if (done !== undefined) process.nextTick(done)
    return true
  }
}

const realOut = process.stdout.write.bind(process.stdout)
const realErr = process.stderr.write.bind(process.stderr)
const results: BatchResult[] = []
for (const argv of runs) {
  const out: Buffer[] = []
  const err: Buffer[] = []
  process.stdout.write = capture(out)
  process.stderr.write = capture(err)
  let code: number
  try {
    code = await tsnfs(argv)
  } finally {
    process.stdout.write = realOut
    process.stderr.write = realErr
  }
  results.push({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() })
}
realOut(`${JSON.stringify(results)}\n`)
