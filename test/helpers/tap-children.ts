/*
 * Loaded into every test process before the test (.taprc node-arg). When coverage is off (CI runs
 * `tap --disable-coverage`), the node processes a test starts (tsnfs commands and servers, FUSE
 * daemons, holders) run without tap's processinfo hook: it loads through a loader thread that sees
 * every module, which made each short-lived `tsnfs` command about 1 s of CPU slower (0.45 s → 1.4 s
 * for `serve --help`). Stripping NODE_OPTIONS in a spawn's env is not enough: tap wraps
 * child_process spawning (process-on-spawn) and adds the hook back, so the wrapper's listeners go too.
 * With coverage on (`npm run coverage`) nothing changes, so the children's coverage still counts.
 */
const HOOK = /@tapjs[/\\]processinfo/

if (process.env._TAPJS_PROCESSINFO_COVERAGE_ === '0') {
  const spawnState = (globalThis as Record<symbol, { listeners?: unknown[] } | undefined>)[Symbol.for('process-on-spawn@*:singletonId')]
  if (spawnState?.listeners !== undefined) spawnState.listeners.length = 0
  // NODE_OPTIONS holds quoted or bare options; keep every one but the hook.
  const options = (process.env.NODE_OPTIONS ?? '').match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? []
  const kept = options.filter((o) => !HOOK.test(o))
  if (kept.length === 0) delete process.env.NODE_OPTIONS
  else process.env.NODE_OPTIONS = kept.join(' ')
}

export {}
