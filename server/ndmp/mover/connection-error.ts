/**
 * Why the data connection (the byte stream between the NDMP DATA service and the MOVER) failed.
 * Stable codes: the services map them to NDMP halt reasons (CONNECT_CLOSED, CONNECT_ERROR,
 * ABORTED) and to the NDMP error of DATA_CONNECT / MOVER_CONNECT (NDMP_CONNECT_ERR).
 */
export type DataConnectionErrorCode =
  /** This end was closed (close()) or the peer went away: no more reads or writes. */
  | 'DATA_CONN_CLOSED'
  /** The transport failed (ECONNRESET, EPIPE, ...): the cause is attached. */
  | 'DATA_CONN_RESET'
  /** Nothing answered at any of the addresses (TCP), or no listener waits (LOCAL). */
  | 'DATA_CONN_REFUSED'
  /** No peer connected or answered within the time allowed. */
  | 'DATA_CONN_TIMEOUT'
  /** The caller's AbortSignal fired. */
  | 'DATA_CONN_ABORTED'
  /** A LOCAL listener already waits in this session (the draft allows one data connection). */
  | 'DATA_CONN_BUSY'
  /** An address the connection cannot use (not IPv4, port out of range, empty list). */
  | 'DATA_CONN_BAD_ADDRESS'
  /** write() after end(). */
  | 'DATA_CONN_ENDED'

export class DataConnectionError extends Error {
  readonly code: DataConnectionErrorCode
  constructor(code: DataConnectionErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'DataConnectionError'
    this.code = code
  }
}
