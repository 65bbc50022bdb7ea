/** Resolves at the first SIGINT or SIGTERM, logged: how the long-running commands (serve, standby) end. */
export function stopSignal(log: { info(obj: object, msg?: string): void }): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      log.info({ signal }, 'stopping')
      resolve()
    }
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  })
}
