/** One piece of a layer I/O: `length` bytes at `memberOffset` on member `member`, at `bufOffset` in the caller's buffer. */
export interface Piece {
  readonly member: number
  readonly memberOffset: number
  readonly bufOffset: number
  readonly length: number
}

/**
 * Where the layer byte `offset` lives: its member, the offset on that member, and how many bytes
 * from there stay on the same member contiguously (the piece can run no further).
 */
export type MapFn = (offset: number) => { member: number; memberOffset: number; run: number }

/** Splits [offset, offset + length) of a layer into member pieces by `map`. */
export function splitRange(offset: number, length: number, map: MapFn): Piece[] {
  const pieces: Piece[] = []
  let done = 0
  while (done < length) {
    const { member, memberOffset, run } = map(offset + done)
    const n = Math.min(run, length - done)
    pieces.push({ member, memberOffset, bufOffset: done, length: n })
    done += n
  }
  return pieces
}
