import type { BlockDevice } from './block-device.ts'

/**
 * A device that hands every call to `inner` unchanged. The devices that wrap another (fault
 * injection, crash recording, the tests' counters) extend it and override only what they change,
 * so the delegation of the rest is written once.
 */
export class PassThroughDevice implements BlockDevice {
  readonly inner: BlockDevice

  constructor(inner: BlockDevice) {
    this.inner = inner
  }

  get size(): number {
    return this.inner.size
  }

  get sectorSize(): number {
    return this.inner.sectorSize
  }

  get readOnly(): boolean {
    return this.inner.readOnly
  }

  read(offset: number, length: number): Promise<Buffer> {
    return this.inner.read(offset, length)
  }

  readInto(offset: number, target: Uint8Array): Promise<void> {
    return this.inner.readInto(offset, target)
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    return this.inner.write(offset, data)
  }

  flush(): Promise<void> {
    return this.inner.flush()
  }

  close(): Promise<void> {
    return this.inner.close()
  }
}
