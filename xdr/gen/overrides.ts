/*
 * Exceptions to the generated code, by name (the kernel xdrgen's
 * `pragma exclude`). Keep this list short: every entry is a codec a
 * reviewer must check against the RFC by hand.
 */

/**
 * Types whose strings stay Buffer: NFS names and paths are bytes, not text (STYLE.md §3.6); so
 * are NDMP's file history paths (ndmpN_path) and the paths of a file to recover (ndmpN_name).
 */
export const BYTE_STRINGS: ReadonlySet<string> = new Set(['filename3', 'nfspath3', 'dirpath', 'name', 'ndmp3_path', 'ndmp4_path', 'ndmp3_name', 'ndmp4_name'])

/**
 * Types whose codec is hand-written in xdr/custom/, per spec file:
 * { 'xdr/spec/nfs3.x': { READ3resok: '../custom/read.ts' } }.
 * The generator imports and re-exports them instead of emitting them.
 */
export const OVERRIDES: Readonly<Record<string, Readonly<Record<string, string>>>> = {}

/**
 * Fixed-size structs (every field an int, uint, hyper, uhyper, bool, enum or
 * such a struct) whose encoder writes in place after one room check
 * (XdrWriter.room) instead of a call and a check a field, per spec file.
 * The bytes and the refusals are the per-field encoder's. fattr3 is in
 * nearly every NFSv3 reply (RFC 1813 §2.5), wcc_attr in every wcc_data.
 */
export const FLAT_ENCODERS: Readonly<Record<string, ReadonlySet<string>>> = {
  'xdr/spec/nfs3.x': new Set(['fattr3', 'wcc_attr']),
}
