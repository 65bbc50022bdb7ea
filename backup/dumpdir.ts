/*
 * A directory's full listing in its pax header, as GNU tar's incremental format keeps it
 * (GNU tar manual, "Dumpdir"): the keyword GNU.dumpdir, each entry a flag byte and a name ended by
 * NUL, the list ended by one more NUL. Flags: 'Y' a file copied in this archive, 'N' a file not
 * copied (unchanged since the base), 'D' a directory. GNU tar reads it silently, and with
 * --incremental removes what is not listed, exactly as our restore with applyDeletions does.
 */

export const DUMPDIR_KEY = 'GNU.dumpdir'

export interface DumpdirEntry {
  flag: 'Y' | 'N' | 'D'
  name: Buffer
}

export function encodeDumpdir(entries: readonly DumpdirEntry[]): Buffer {
  const parts: Buffer[] = []
  for (const e of entries) parts.push(Buffer.from(e.flag, 'ascii'), e.name, Buffer.alloc(1))
  parts.push(Buffer.alloc(1))
  return Buffer.concat(parts)
}

/** null when the value is not a dumpdir (a bad flag or no terminating NUL). */
export function decodeDumpdir(v: Buffer): DumpdirEntry[] | null {
  const out: DumpdirEntry[] = []
  let pos = 0
  while (pos < v.length) {
    if (v[pos] === 0) return out
    const end = v.indexOf(0, pos)
    if (end === -1) return null
    const flag = String.fromCharCode(v[pos] ?? 0)
    // GNU tar also writes R/T/X (rename records); they name no entry of the final listing.
    if (flag === 'R' || flag === 'T' || flag === 'X') {
      pos = end + 1
      continue
    }
    if (flag !== 'Y' && flag !== 'N' && flag !== 'D') return null
    out.push({ flag, name: Buffer.from(v.subarray(pos + 1, end)) })
    pos = end + 1
  }
  return out.length === 0 && v.length === 0 ? out : null
}
