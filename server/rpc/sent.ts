/*
 * Reply buffers to be handed back once sent: READ data a backend lends from
 * its own storage (ReadResult.release) goes out by reference, so the loan
 * can only end when the transport has passed the bytes to the kernel. The
 * TCP connection calls the hook from its write callback; a reply that is
 * never written (the connection closed first, or UDP) simply never calls it,
 * and the weak map lets both go.
 */
const hooks = new WeakMap<Buffer, () => void>()

/** Call `release` once `data`, appended by reference to a reply, has been sent. */
export function releaseWhenSent(data: Buffer, release: () => void): void {
  hooks.set(data, release)
}

/** The hook for a buffer being written, taken (it runs at most once), or undefined. */
export function takeSentHook(b: Buffer): (() => void) | undefined {
  const hook = hooks.get(b)
  if (hook !== undefined) hooks.delete(b)
  return hook
}
