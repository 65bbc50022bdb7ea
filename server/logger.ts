/**
 * The logging surface the server depends on: a subset of pino's, so a pino
 * logger can be passed as is, and tests can pass silentLogger.
 */
export interface LogFn {
  (obj: object, msg?: string): void
  (msg: string): void
}

export interface Logger {
  debug: LogFn
  info: LogFn
  warn: LogFn
  error: LogFn
  child(bindings: object): Logger
  /** pino's level test; callers guard per-request debug work with it (absent: treat as disabled). */
  isLevelEnabled?(level: string): boolean
}

const noop: LogFn = () => {
  /* silent */
}

export const silentLogger: Logger = {
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  child: () => silentLogger,
  isLevelEnabled: () => false,
}
