/*
 * A V8 CPU profile of part of a bench run, through the inspector of this process (no
 * `--cpu-prof` flag, so only the measured part is sampled): the engine benches write one when
 * asked for a file.
 */
import { writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector/promises'

/** A CPU profile from here to the returned stop (which writes it to file), or nothing without a file. */
export async function startProfile(file: string | undefined): Promise<() => Promise<void>> {
  if (file === undefined || file === '') return () => Promise.resolve()
  const session = new Session()
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.setSamplingInterval', { interval: 100 })
  await session.post('Profiler.start')
  return async () => {
    const { profile } = await session.post('Profiler.stop')
    await writeFile(file, JSON.stringify(profile))
    session.disconnect()
  }
}
