/*
 * The backup manager's errors: each carries a stable code (the CLI prints it, the control
 * channel sends it, the tests match it).
 */

export type DmaErrorCode =
  | 'DMA_SCHEDULE_SYNTAX' // a schedule file line that does not parse (the message names the line)
  | 'DMA_BAD_EXPORT' // an export that is neither HOST[:PORT]:/PATH nor file:PATH
  | 'DMA_BAD_LEVEL' // a level outside 0..9, or a level rule that does not parse
  | 'DMA_NO_POOL' // no pool in that directory (label a tape first)
  | 'DMA_POOL_SYNTAX' // a pool index that is not ours
  | 'DMA_LABEL_EXISTS' // tsnfs backup label of a label the pool has
  | 'DMA_BAD_LABEL' // a label that is not 1..64 of [A-Za-z0-9._-]
  | 'DMA_NO_JOB' // no job of that id
  | 'DMA_JOB_STATE' // abort/continue of a job in a state that does not allow it
  | 'DMA_NO_TAPE' // continue while the tape the job asked for is still not labelled
  | 'DMA_ABORTED' // the job was aborted
  | 'DMA_CONTROL' // the control channel: a bad request or reply
  | 'DMA_BUSY' // another manager holds the state directory
  | 'DMA_RESTORE' // a restore over NDMP failed (the data service halted, names not restored, no tape)

export class DmaError extends Error {
  readonly code: DmaErrorCode
  constructor(code: DmaErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'DmaError'
    this.code = code
  }
}

/** Whether `err` is a node system error of that code (ENOENT, EEXIST...). */
export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && 'code' in err && err.code === code
}
