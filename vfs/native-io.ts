/*
 * The loader of the backends' native I/O helper (vfs/native/io.c): a page-cache-only read (the
 * engine's image, the local backend's files) and a hardware CRC-32C (the engine's checksums). Both
 * are optional: without the addon (not built, TSNFS_NO_NATIVE=1) files are read through Node's
 * asynchronous reads only and checksums are computed in JavaScript (engine/crc32c.ts).
 */
import { loadAddon } from './native-addon.ts'
import type { LoadedAddon } from './native-addon.ts'

export interface NativeIo {
  /** preadv2(RWF_NOWAIT) into buf[offset, offset+length): bytes read from the page cache, or -errno (-EAGAIN: not cached). */
  readNoWait(fd: number, buf: Uint8Array, offset: number, length: number, position: number): number
  /** The raw CRC-32C update of buf[start, end) (as crc32cUpdate); absent where the CPU lacks the instruction. */
  crc32c?: (crc: number, buf: Uint8Array, start: number, end: number) => number
  readonly EAGAIN: number
}

let loaded: LoadedAddon<NativeIo> | null = null

/** The addon, loaded on first use; null when it cannot be had (whyNoNativeIo says why). */
export function nativeIo(): NativeIo | null {
  loaded ??= loadAddon<NativeIo>('tsnfs_io.node', import.meta.url,
    (a) => typeof a.readNoWait === 'function' && typeof a.EAGAIN === 'number', 'I/O helper')
  return loaded.addon
}

export function whyNoNativeIo(): string | null {
  nativeIo()
  return loaded?.why ?? null
}
