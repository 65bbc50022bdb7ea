/*
 * glibc malloc settings for the processes tsnfs starts and keeps running
 * (the mount daemon; deploy/tsnfs.service sets the same for the server).
 * Node allocates Buffer memory with malloc. Past the first free of a large
 * block, glibc raises its mmap threshold, so 1 MiB buffers come from the
 * heap, and memory freed in the middle of the heap stays resident for good
 * (only the top is ever given back): after a copy of a large tree, the
 * server kept hundreds of MiB it no longer used. A fixed threshold makes
 * every block of 64 KiB or more a mapping of its own, unmapped when freed;
 * two arenas keep the threads (libuv's pool, V8's helpers, the FUSE reader)
 * from each holding a heap of their own. Settings the caller already has
 * in its environment win.
 */
export const MALLOC_ENV: Readonly<Record<string, string>> = Object.freeze({
  MALLOC_ARENA_MAX: '2',
  MALLOC_MMAP_THRESHOLD_: '65536',
})

/** `env` with MALLOC_ENV under it: what a child we keep running gets. */
export function withMallocEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...MALLOC_ENV, ...env }
}
