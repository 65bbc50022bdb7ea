import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'

/*
 * The parsed export list. The parser builds these objects and checks the
 * result against the schema before returning, so a bug in the parser cannot
 * hand the server a half-formed export.
 */

const Uint32 = Type.Integer({ minimum: 0, maximum: 0xffff_ffff })

/** What a client that matched one client spec may do (DESIGN.md §3.12). */
export const ExportClientOptionsSchema = Type.Object(
  {
    rw: Type.Boolean(),
    /** 'root' = root_squash, 'all' = all_squash, 'none' = no_root_squash (and no all_squash). */
    squash: Type.Union([Type.Literal('root'), Type.Literal('all'), Type.Literal('none')]),
    anonuid: Uint32,
    anongid: Uint32,
    /** Requests must come from a source port below 1024. */
    secure: Type.Boolean(),
    /** Reply only after data and metadata changes are on stable storage. */
    sync: Type.Boolean(),
    crossmnt: Type.Boolean(),
  },
  { additionalProperties: false },
)
export type ExportClientOptions = Static<typeof ExportClientOptionsSchema>

/** How a client spec matches a peer. Addresses are canonical text (see address.ts). */
export const ClientMatchSchema = Type.Union([
  Type.Object({ kind: Type.Literal('any') }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('address'), address: Type.String() }, { additionalProperties: false }),
  Type.Object(
    { kind: Type.Literal('network'), address: Type.String(), prefix: Type.Integer({ minimum: 0, maximum: 128 }) },
    { additionalProperties: false },
  ),
  Type.Object({ kind: Type.Literal('hostname'), name: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('wildcard'), pattern: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
])
export type ClientMatch = Static<typeof ClientMatchSchema>

export const ClientSpecSchema = Type.Object(
  {
    /** The client as written in the file (`*` for a bare `(opts)`); MOUNT EXPORT lists these. */
    name: Type.String({ minLength: 1 }),
    match: ClientMatchSchema,
    options: ExportClientOptionsSchema,
    line: Type.Integer({ minimum: 1 }),
    column: Type.Integer({ minimum: 1 }),
  },
  { additionalProperties: false },
)
export type ClientSpec = Static<typeof ClientSpecSchema>

export const BackendSchema = Type.Union([Type.Literal('memory'), Type.Literal('local'), Type.Literal('engine'), Type.Literal('cluster')])
export type BackendName = Static<typeof BackendSchema>

/** disks= entries at most: a volume's member limit (vfs/volume/config.ts MAX_MEMBERS). */
export const MAX_VOLUME_DISKS = 64

export const EngineOptionsSchema = Type.Object(
  {
    /** `image=`: absolute path of the image file or block device (absent when the export names a volume). */
    image: Type.Optional(Type.String({ pattern: '^/', maxLength: 4096 })),
    /** `volume=`: the name of the volume (issue 14) assembled from `disks`, instead of an image. */
    volume: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._-]+$', maxLength: 64 })),
    /** `disks=`: the volume's member disks, absolute paths or globs of the last component, expanded at start. */
    disks: Type.Optional(Type.Array(Type.String({ pattern: '^/', maxLength: 4096 }), { minItems: 1, maxItems: MAX_VOLUME_DISKS })),
    /** `errors=`: what a metadata error does to the export (ext4's errors= mount option). */
    errors: Type.Union([Type.Literal('remount-ro'), Type.Literal('continue')]),
    /** `cache=`: the metadata buffer cache's byte limit. */
    cacheBytes: Type.Integer({ minimum: 1 << 20 }),
    /** `snapdir=`: whether a volume's `.snapshot` shows in the root's listing (volume= only). */
    snapdir: Type.Optional(Type.Union([Type.Literal('hidden'), Type.Literal('visible')])),
    /** `rebuild_rate=`: bytes per second for the volume's rebuilds (resumed at open, or an online replace without --rate); 0: no limit. */
    rebuildRate: Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 40 })),
  },
  { additionalProperties: false },
)
export type EngineOptions = Static<typeof EngineOptionsSchema>

/** backend=cluster (issue 17): where the shared metadata and data live; passwords never appear here. */
export const ClusterOptionsSchema = Type.Object(
  {
    /** `meta=`: postgres://user@host:port/database?... (no password: options.ts refuses one). */
    meta: Type.String({ pattern: '^postgres(ql)?://', maxLength: 2048 }),
    /** `data=`: 'postgres' (blocks in the metadata database) or s3://bucket?endpoint=...&region=... */
    data: Type.String({ pattern: '^(postgres$|s3://)', maxLength: 2048 }),
    /** `credentials=`: the file with meta_password=, s3_access_key=, s3_secret_key= lines. */
    credentials: Type.Optional(Type.String({ pattern: '^/', maxLength: 4096 })),
    /** `cache=`: the byte limit of this server's cache of the export's data blocks (absent: 256 MiB, vfs/cluster/data/file-data.ts). */
    cacheBytes: Type.Optional(Type.Integer({ minimum: 1 << 20 })),
    /** `metacache=`: the byte limit of its metadata caches, split as vfs/cluster/caches.ts says (absent: ~162 MiB in all). */
    metaCacheBytes: Type.Optional(Type.Integer({ minimum: 1 << 20 })),
  },
  { additionalProperties: false },
)
export type ClusterOptions = Static<typeof ClusterOptionsSchema>

/** The engine's buffer cache when `cache=` is not given. */
export const DEFAULT_ENGINE_CACHE = 256 << 20

export const ExportEntrySchema = Type.Object(
  {
    /** Absolute, normalized: no `.`/`..`/empty components, no trailing `/` except the root. */
    path: Type.String({ pattern: '^/', maxLength: 1024 }),
    backend: BackendSchema,
    /** `fsid=N` (root = 0) or a UUID as 32 lower-case hex digits. */
    fsid: Type.Optional(Type.Union([Uint32, Type.String({ pattern: '^[0-9a-f]{32}$' })])),
    clients: Type.Array(ClientSpecSchema, { minItems: 1 }),
    line: Type.Integer({ minimum: 1 }),
    /** backend=engine: the ext4-format image it serves and how (absent for other backends). */
    engine: Type.Optional(EngineOptionsSchema),
    /** backend=cluster: its database and object store (absent for other backends). */
    cluster: Type.Optional(ClusterOptionsSchema),
  },
  { additionalProperties: false },
)
export type ExportEntry = Static<typeof ExportEntrySchema>

export const ExportListSchema = Type.Object(
  { file: Type.String(), exports: Type.Array(ExportEntrySchema) },
  { additionalProperties: false },
)
export type ExportList = Static<typeof ExportListSchema>

export const exportListChecker = TypeCompiler.Compile(ExportListSchema)
