/*
 * The loader of the engine's native helper (vfs/engine/native/engine.c): a page-cache-only read
 * and a hardware CRC-32C. Both are optional: without the addon (not built, TSNFS_NO_NATIVE=1) the
 * image is read through Node's asynchronous reads only and checksums in JavaScript (crc32c.ts).
 */
import { loadAddon } from '../native-addon.ts'
import type { LoadedAddon } from '../native-addon.ts'

export interface NativeEngine {
  /** preadv2(RWF_NOWAIT) into buf[offset, offset+length): bytes read from the page cache, or -errno (-EAGAIN: not cached). */
  readNoWait(fd: number, buf: Uint8Array, offset: number, length: number, position: number): number
  /** The raw CRC-32C update of buf[start, end) (as crc32cUpdate); absent where the CPU lacks the instruction. */
  crc32c?: (crc: number, buf: Uint8Array, start: number, end: number) => number
  readonly EAGAIN: number
}

let loaded: LoadedAddon<NativeEngine> | null = null

/** The addon, loaded on first use; null when it cannot be had (whyNoNativeEngine says why). */
export function nativeEngine(): NativeEngine | null {
  loaded ??= loadAddon<NativeEngine>('tsnfs_engine.node', import.meta.url,
    (a) => typeof a.readNoWait === 'function' && typeof a.EAGAIN === 'number', 'engine helper')
  return loaded.addon
}

export function whyNoNativeEngine(): string | null {
  nativeEngine()
  return loaded?.why ?? null
}
