/*
 * Little-endian structures described as field tables (name, offset, type), so
 * one table drives both decode and encode and the offsets can be read side by
 * side with the kernel's Documentation/filesystems/ext4/*.rst tables.
 */

export type FieldType = 'u8' | 'u16' | 'u32' | 'u64' | { bytes: number }

export type FieldTable = ReadonlyArray<readonly [name: string, offset: number, type: FieldType]>

export function fieldEnd(table: FieldTable): number {
  let end = 0
  for (const [, offset, type] of table) end = Math.max(end, offset + sizeOf(type))
  return end
}

function sizeOf(type: FieldType): number {
  if (typeof type === 'object') return type.bytes
  return type === 'u8' ? 1 : type === 'u16' ? 2 : type === 'u32' ? 4 : 8
}

/** Decode every field of table from buf at base; buf must hold the whole table (the caller checks). */
export function decodeFields(buf: Buffer, base: number, table: FieldTable): Record<string, number | Buffer> {
  const out: Record<string, number | Buffer> = {}
  for (const [name, offset, type] of table) {
    const at = base + offset
    if (typeof type === 'object') out[name] = Buffer.from(buf.subarray(at, at + type.bytes))
    else if (type === 'u8') out[name] = buf.readUInt8(at)
    else if (type === 'u16') out[name] = buf.readUInt16LE(at)
    else if (type === 'u32') out[name] = buf.readUInt32LE(at)
    // u64 fields hold block numbers and byte counts; 2^53 is far beyond any image we open.
    else out[name] = buf.readUInt32LE(at) + buf.readUInt32LE(at + 4) * 2 ** 32
  }
  return out
}

/** Write every field of table present in value into buf at base; others are left as they are. */
export function encodeFields(buf: Buffer, base: number, table: FieldTable, value: Readonly<Record<string, unknown>>): void {
  for (const [name, offset, type] of table) {
    const v = value[name]
    if (v === undefined) continue
    const at = base + offset
    if (typeof type === 'object') {
      const src = v as Buffer
      buf.fill(0, at, at + type.bytes)
      src.copy(buf, at, 0, Math.min(src.length, type.bytes))
    } else if (type === 'u8') buf.writeUInt8(v as number, at)
    else if (type === 'u16') buf.writeUInt16LE(v as number, at)
    else if (type === 'u32') buf.writeUInt32LE(v as number, at)
    else {
      const n = v as number
      buf.writeUInt32LE(n % 2 ** 32, at)
      buf.writeUInt32LE(Math.floor(n / 2 ** 32), at + 4)
    }
  }
}
