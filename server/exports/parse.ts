import { readFile } from 'node:fs/promises'
import { parseClientMatch } from './client-spec.ts'
import { ExportsError } from './errors.ts'
import { lex, type LogicalLine, type Token } from './lexer.ts'
import { applyOptions, defaultOptionState, finishOptions, type ExportLevel, type OptionState } from './options.ts'
import { DEFAULT_ENGINE_CACHE, exportListChecker, type ClientSpec, type ExportEntry, type ExportList } from './schema.ts'

/** RFC 1813 §5.1.3: MNTPATHLEN, the longest path MNT accepts. */
const MAX_PATH_BYTES = 1024

/**
 * Parses an export list in exports(5) syntax (see lexer.ts for comments,
 * quoting and continuations):
 *
 *     /path  [-defaultopts]  client(opts)  client  (opts) ...
 *
 * A client without `(opts)` gets the line's defaults; a bare `(opts)` means
 * `*` (Linux warns and does the same); a line with no client exports to `*`.
 * tsnfs adds `backend=memory|local` (default local). Throws ExportsError on
 * the first problem; never returns a partial list.
 */
export function parseExports(text: string, fileName: string): ExportList {
  const exports: ExportEntry[] = []
  const seen = new Map<string, number>()
  for (const logical of lex(text, fileName)) {
    const entry = parseLine(logical, fileName)
    const first = seen.get(entry.path)
    if (first !== undefined) {
      const col = logical.tokens[0]?.column ?? 1
      throw new ExportsError(fileName, entry.line, col, `duplicate export "${entry.path}" (first at line ${first})`)
    }
    seen.set(entry.path, entry.line)
    exports.push(entry)
  }
  const list: ExportList = { file: fileName, exports }
  const bad = exportListChecker.Errors(list).First()
  /* c8 ignore next 3 -- the parser only builds valid entries; this guards against its own bugs */
  if (bad !== undefined) {
    throw new ExportsError(fileName, 1, 1, `internal error: ${bad.path}: ${bad.message}`)
  }
  return list
}

/** Reads and parses an export list file; errors name the file as given. */
export async function loadExports(path: string): Promise<ExportList> {
  return parseExports(await readFile(path, 'utf8'), path)
}

/**
 * What `npm start` serves with no export file: an in-memory tree at `/export`,
 * writable, reachable from any host and from unprivileged ports (our own client
 * and libnfs run without root), with root squashed as Linux does by default.
 */
export const DEFAULT_EXPORTS_TEXT = '/export  *(rw,insecure,root_squash,sync,backend=memory)\n'

export function defaultExports(): ExportList {
  return parseExports(DEFAULT_EXPORTS_TEXT, '<default exports>')
}

/**
 * Rejects exports whose backend this server cannot provide, or cannot
 * configure as written. Kept apart from parsing so the set can grow.
 */
export function validateBackends(list: ExportList, available: ReadonlySet<string>): void {
  for (const e of list.exports) {
    // exports(5) sets crossmnt per client, but one backend serves the export to every client
    // (one set of file ids, one device table): refused rather than served one way to all.
    const first = e.clients[0]
    const odd = e.clients.find((c) => c.options.crossmnt !== first?.options.crossmnt)
    if (odd !== undefined) {
      throw new ExportsError(list.file, odd.line, odd.column, `crossmnt must be set for every client of "${e.path}" or for none`)
    }
    if (available.has(e.backend)) continue
    const hint = e.backend === 'local' ? ' yet; use backend=memory' : ''
    throw new ExportsError(list.file, e.line, 1, `backend ${e.backend} is not available${hint} (export "${e.path}")`)
  }
}

function parseLine(logical: LogicalLine, file: string): ExportEntry {
  const [pathTok, ...rest] = logical.tokens
  /* c8 ignore next -- the lexer never yields an empty line */
  if (pathTok === undefined) throw new ExportsError(file, logical.line, 1, 'empty line')
  const path = parsePath(pathTok, file)
  const defaults = defaultOptionState()
  const level: ExportLevel = {}
  let i = 0
  for (; i < rest.length; i++) {
    const tok = rest[i]
    if (tok === undefined || !tok.text.startsWith('-')) break
    applyOrThrow(tok.text.slice(1), tok, 1, defaults, level, file)
  }
  const clients: ClientSpec[] = []
  for (const tok of rest.slice(i)) clients.push(parseClient(tok, defaults, level, file))
  if (clients.length === 0) {
    // Linux exports to everyone (with a warning) when no client is named.
    clients.push({ name: '*', match: { kind: 'any' }, options: finishOptions(defaults), line: pathTok.line, column: pathTok.column })
  }
  const entry: ExportEntry = { path, backend: level.backend ?? 'local', clients, line: logical.line }
  if (level.fsid !== undefined) entry.fsid = level.fsid
  const engineOnly = level.image ?? level.errors ?? level.volume ?? level.disks ?? level.snapdir ?? level.rebuildRate
  if (entry.backend === 'engine') {
    const fail = (reason: string): never => {
      throw new ExportsError(file, logical.line, 1, `${reason} (export "${path}")`)
    }
    const common = { errors: level.errors ?? 'remount-ro', cacheBytes: level.cacheBytes ?? DEFAULT_ENGINE_CACHE } as const
    if (level.volume !== undefined) {
      if (level.image !== undefined) fail('volume= and image= exclude each other: the engine serves one image or one volume')
      if (level.disks === undefined) fail(`volume=${level.volume} needs disks=/path/a.img:/path/b.img (its member disks, or globs)`)
      entry.engine = {
        volume: level.volume, disks: level.disks ?? [], ...common,
        ...(level.snapdir === undefined ? {} : { snapdir: level.snapdir }),
        ...(level.rebuildRate === undefined ? {} : { rebuildRate: level.rebuildRate }),
      }
    } else {
      if (level.disks !== undefined) fail('disks= needs volume=NAME')
      if (level.snapdir !== undefined) fail('snapdir= needs volume=NAME (an image keeps no snapshots)')
      if (level.rebuildRate !== undefined) fail('rebuild_rate= needs volume=NAME (an image has no members to rebuild)')
      if (level.image === undefined) fail('backend=engine needs image=/path/to/image')
      entry.engine = { image: level.image ?? '', ...common }
    }
  } else if (engineOnly !== undefined) {
    throw new ExportsError(file, logical.line, 1, `image=, volume=, disks=, snapdir=, rebuild_rate= and errors= apply only to backend=engine (export "${path}")`)
  }
  // cache= bounds a cache the engine and the cluster backend keep (metadata blocks; data blocks).
  if (level.cacheBytes !== undefined && entry.backend !== 'engine' && entry.backend !== 'cluster') {
    throw new ExportsError(file, logical.line, 1, `cache= applies only to backend=engine and backend=cluster (export "${path}")`)
  }
  // metacache= bounds what only the cluster backend keeps of the shared metadata.
  if (level.metaCacheBytes !== undefined && entry.backend !== 'cluster') {
    throw new ExportsError(file, logical.line, 1, `metacache= applies only to backend=cluster (export "${path}")`)
  }
  const clusterOnly = level.meta ?? level.data ?? level.credentials
  if (entry.backend === 'cluster') {
    if (level.meta === undefined) throw new ExportsError(file, logical.line, 1, `backend=cluster needs meta=postgres://user@host:port/database (export "${path}")`)
    if (level.data === undefined) throw new ExportsError(file, logical.line, 1, `backend=cluster needs data=postgres or data=s3://bucket?endpoint=URL (export "${path}")`)
    entry.cluster = {
      meta: level.meta, data: level.data,
      ...(level.credentials === undefined ? {} : { credentials: level.credentials }),
      ...(level.cacheBytes === undefined ? {} : { cacheBytes: level.cacheBytes }),
      ...(level.metaCacheBytes === undefined ? {} : { metaCacheBytes: level.metaCacheBytes }),
    }
  } else if (clusterOnly !== undefined) {
    throw new ExportsError(file, logical.line, 1, `meta=, data= and credentials= apply only to backend=cluster (export "${path}")`)
  }
  return entry
}

function parseClient(tok: Token, defaults: OptionState, level: ExportLevel, file: string): ClientSpec {
  const fail = (offset: number, reason: string): never => {
    throw new ExportsError(file, tok.line, tok.column + offset, reason)
  }
  const text = tok.text
  if (text.startsWith('-')) fail(0, `default options ("${text}") must come right after the export path`)
  const open = text.indexOf('(')
  const name = open === -1 ? text : open === 0 ? '*' : text.slice(0, open)
  const opts = { ...defaults }
  if (open !== -1) {
    if (!text.endsWith(')')) fail(text.length - 1, `missing ")" after the options of "${text}"`)
    const list = text.slice(open + 1, -1)
    const stray = list.search(/[()]/)
    if (stray !== -1) fail(open + 1 + stray, `unexpected "${list.charAt(stray)}" in options`)
    if (list !== '') applyOrThrow(list, tok, open + 1, opts, level, file)
  } else if (text.includes(')')) {
    fail(text.indexOf(')'), 'unexpected ")"')
  }
  const match = parseClientMatch(name)
  if (typeof match === 'string') fail(0, match)
  return { name, match: match as Exclude<typeof match, string>, options: finishOptions(opts), line: tok.line, column: tok.column }
}

function applyOrThrow(list: string, tok: Token, offset: number, s: OptionState, level: ExportLevel, file: string): void {
  const bad = applyOptions(list, s, level)
  if (bad !== null) throw new ExportsError(file, tok.line, tok.column + offset + bad.offset, bad.reason)
}

/** Absolute, no `.`/`..`/empty components, trailing `/` dropped; `\ooo` octal escapes decoded (exports(5)). */
function parsePath(tok: Token, file: string): string {
  const fail = (reason: string): never => {
    throw new ExportsError(file, tok.line, tok.column, reason)
  }
  const path = tok.text.replace(/\\([0-7]{3})?/g, (all, oct: string | undefined) =>
    oct === undefined ? fail(`invalid escape in path "${tok.text}" (use \\ooo octal)`) : String.fromCharCode(parseInt(oct, 8)),
  )
  if (!path.startsWith('/')) fail(`export path must be absolute, got "${path}"`)
  if (path.includes('\0')) fail('export path contains a NUL character')
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) fail(`export path is longer than ${MAX_PATH_BYTES} bytes`)
  if (path === '/') return path
  const trimmed = path.endsWith('/') ? path.slice(0, -1) : path
  for (const part of trimmed.slice(1).split('/')) {
    if (part === '') fail(`export path "${path}" has an empty component ("//")`)
    if (part === '.' || part === '..') fail(`export path "${path}" must not contain "${part}"`)
  }
  return trimmed
}
