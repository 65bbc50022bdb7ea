/*
 * The CONFIG interface (draft-skardal-ndmpv4-04 §5; v3 the same but for the extension list):
 * what this server is and offers. Before authorization only CONFIG_GET_SERVER_INFO (which auth
 * types to use) and CONFIG_GET_AUTH_ATTR (the MD5 challenge) answer: a connection without valid
 * credentials learns nothing else (issue 16 §1).
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { hostname, release, type } from 'node:os'
import * as v3 from '../../xdr/generated/ndmp3.ts'
import * as v4 from '../../xdr/generated/ndmp4.ts'
import { ndmpMd5Challenge } from '../../xdr/ndmp/md5.ts'
import { NDMP_BUTYPES } from './butypes.ts'
import { sessionControls } from './session.ts'
import { NdmpError, type NdmpExport, type NdmpRegistry, type NdmpService, type NdmpSession } from './service-types.ts'

export interface ConfigServiceOptions {
  /** CONFIG_GET_SERVER_INFO's revision_number: the package version. */
  revision: string
}

export const NDMP_VENDOR = 'tsnfs'
export const NDMP_PRODUCT = 'tsnfs NDMP data and tape service'
/** CONFIG_GET_TAPE_INFO's model of every tape device: a host file or directory acting as a tape. */
export const NDMP_TAPE_MODEL = 'tsnfs virtual tape'

const NO_ERR = 0 as const
const ILLEGAL_ARGS = v4.ndmp4_error.NDMP4_ILLEGAL_ARGS_ERR

/** A stable host id: the machine id where there is one, else a hash of the host name. */
function hostId(): string {
  try {
    const id = readFileSync('/etc/machine-id', 'utf8').trim()
    if (/^[0-9a-f]{8,}$/.test(id)) return id.slice(0, 8)
  } catch {
    /* no machine id: fall back to the name */
  }
  return createHash('sha256').update(hostname()).digest('hex').slice(0, 8)
}

function hostInfo(): { error: number; hostname: string; os_type: string; os_vers: string; hostid: string } {
  return { error: NO_ERR, hostname: hostname(), os_type: type(), os_vers: release(), hostid: hostId() }
}

function authAttr(session: NdmpSession, authType: number): v4.ndmp4_auth_attr {
  switch (authType) {
    case v4.ndmp4_auth_type.NDMP4_AUTH_NONE:
      return { auth_type: 0 }
    case v4.ndmp4_auth_type.NDMP4_AUTH_TEXT:
      return { auth_type: 1 }
    case v4.ndmp4_auth_type.NDMP4_AUTH_MD5: {
      const c = sessionControls(session)
      if (c === undefined) throw new Error('not a server NDMP session')
      const challenge = ndmpMd5Challenge()
      c.challenge = challenge
      return { auth_type: 2, challenge }
    }
    default:
      throw new NdmpError(ILLEGAL_ARGS, `auth type ${authType}`)
  }
}

interface FsSizes {
  bits: number
  total_size: bigint
  used_size: bigint
  avail_size: bigint
  total_inodes: bigint
  used_inodes: bigint
  status: string
}

/** One export's sizes (fsstat of its root); an export that cannot answer is listed with its sizes marked unknown. */
async function fsSizes(e: NdmpExport): Promise<FsSizes> {
  try {
    const s = await e.vfs.fsstat(e.root)
    return {
      bits: 0,
      total_size: s.totalBytes,
      used_size: s.totalBytes - s.freeBytes,
      avail_size: s.availBytes,
      total_inodes: s.totalFiles,
      used_inodes: s.totalFiles - s.freeFiles,
      status: 'online',
    }
  } catch (err) {
    return { bits: 0x1f, total_size: 0n, used_size: 0n, avail_size: 0n, total_inodes: 0n, used_inodes: 0n, status: `unavailable: ${(err as Error).message}` }
  }
}

function fsEnv(e: NdmpExport): Array<{ name: string; value: string }> {
  return [
    { name: 'BACKEND', value: e.backend },
    { name: 'SNAPSHOT', value: e.snapshot === undefined ? 'n' : 'y' },
  ]
}

async function fsInfo(session: NdmpSession): Promise<v4.ndmp4_fs_info[]> {
  const out: v4.ndmp4_fs_info[] = []
  for (const e of session.context.exports()) {
    const s = await fsSizes(e)
    out.push({
      unsupported: s.bits,
      fs_type: e.backend,
      fs_logical_device: e.path,
      fs_physical_device: e.backend === 'local' ? e.path : `${e.backend}:${e.path}`,
      total_size: s.total_size,
      used_size: s.used_size,
      avail_size: s.avail_size,
      total_inodes: s.total_inodes,
      used_inodes: s.used_inodes,
      fs_env: fsEnv(e),
      fs_status: s.status,
    })
  }
  return out
}

function tapeInfo(session: NdmpSession): v4.ndmp4_device_info[] {
  return session.context.tapes.map((t) => ({ model: NDMP_TAPE_MODEL, caplist: [{ device: t.name, attr: 0, capability: [] }] }))
}

export function configService(options: ConfigServiceOptions): NdmpService {
  const serverInfo = {
    error: NO_ERR,
    vendor_name: NDMP_VENDOR,
    product_name: NDMP_PRODUCT,
    revision_number: options.revision,
    auth_type: [v4.ndmp4_auth_type.NDMP4_AUTH_TEXT, v4.ndmp4_auth_type.NDMP4_AUTH_MD5],
  }
  const conntypes = [v4.ndmp4_addr_type.NDMP4_ADDR_LOCAL, v4.ndmp4_addr_type.NDMP4_ADDR_TCP]
  return {
    name: 'config',
    register(reg: NdmpRegistry): void {
      const M4 = v4.ndmp4_message
      const M3 = v3.ndmp3_message
      reg.register(4, M4.NDMP4_CONFIG_GET_HOST_INFO, { request: null, reply: v4.ndmp4_config_get_host_info_reply, handle: hostInfo })
      reg.register(3, M3.NDMP3_CONFIG_GET_HOST_INFO, { request: null, reply: v3.ndmp3_config_get_host_info_reply, handle: hostInfo })
      reg.register(4, M4.NDMP4_CONFIG_GET_SERVER_INFO, { request: null, reply: v4.ndmp4_config_get_server_info_reply, beforeAuth: true, handle: () => serverInfo })
      reg.register(3, M3.NDMP3_CONFIG_GET_SERVER_INFO, { request: null, reply: v3.ndmp3_config_get_server_info_reply, beforeAuth: true, handle: () => serverInfo })
      reg.register(4, M4.NDMP4_CONFIG_GET_CONNECTION_TYPE, { request: null, reply: v4.ndmp4_config_get_connection_type_reply, handle: () => ({ error: NO_ERR, addr_types: conntypes }) })
      reg.register(3, M3.NDMP3_CONFIG_GET_CONNECTION_TYPE, { request: null, reply: v3.ndmp3_config_get_connection_type_reply, handle: () => ({ error: NO_ERR, addr_types: conntypes }) })
      reg.register(4, M4.NDMP4_CONFIG_GET_AUTH_ATTR, {
        request: v4.ndmp4_config_get_auth_attr_request,
        reply: v4.ndmp4_config_get_auth_attr_reply,
        beforeAuth: true,
        handle: (s, req) => ({ error: NO_ERR, server_attr: authAttr(s, req.auth_type) }),
      })
      reg.register(3, M3.NDMP3_CONFIG_GET_AUTH_ATTR, {
        request: v3.ndmp3_config_get_auth_attr_request,
        reply: v3.ndmp3_config_get_auth_attr_reply,
        beforeAuth: true,
        handle: (s, req) => ({ error: NO_ERR, server_attr: authAttr(s, req.auth_type) }),
      })
      reg.register(4, M4.NDMP4_CONFIG_GET_BUTYPE_INFO, {
        request: null,
        reply: v4.ndmp4_config_get_butype_info_reply,
        handle: () => ({ error: NO_ERR, butype_info: NDMP_BUTYPES.map((b) => ({ butype_name: b.name, default_env: [...b.defaultEnv], attrs: b.attrsV4 })) }),
      })
      reg.register(3, M3.NDMP3_CONFIG_GET_BUTYPE_INFO, {
        request: null,
        reply: v3.ndmp3_config_get_butype_info_reply,
        handle: () => ({ error: NO_ERR, butype_info: NDMP_BUTYPES.map((b) => ({ butype_name: b.name, default_env: [...b.defaultEnv], attrs: b.attrsV3 })) }),
      })
      reg.register(4, M4.NDMP4_CONFIG_GET_FS_INFO, { request: null, reply: v4.ndmp4_config_get_fs_info_reply, handle: async (s) => ({ error: NO_ERR, fs_info: await fsInfo(s) }) })
      reg.register(3, M3.NDMP3_CONFIG_GET_FS_INFO, {
        request: null,
        reply: v3.ndmp3_config_get_fs_info_reply,
        // v3's "invalid" bits are v4's "unsupported" bits, at the same place.
        handle: async (s) => ({ error: NO_ERR, fs_info: (await fsInfo(s)).map(({ unsupported, ...rest }) => ({ invalid: unsupported, ...rest })) }),
      })
      reg.register(4, M4.NDMP4_CONFIG_GET_TAPE_INFO, { request: null, reply: v4.ndmp4_config_get_tape_info_reply, handle: (s) => ({ error: NO_ERR, tape_info: tapeInfo(s) }) })
      reg.register(3, M3.NDMP3_CONFIG_GET_TAPE_INFO, { request: null, reply: v3.ndmp3_config_get_tape_info_reply, handle: (s) => ({ error: NO_ERR, tape_info: tapeInfo(s) }) })
      // No SCSI media changers or raw SCSI devices: an empty list.
      reg.register(4, M4.NDMP4_CONFIG_GET_SCSI_INFO, { request: null, reply: v4.ndmp4_config_get_scsi_info_reply, handle: () => ({ error: NO_ERR, scsi_info: [] }) })
      reg.register(3, M3.NDMP3_CONFIG_GET_SCSI_INFO, { request: null, reply: v3.ndmp3_config_get_scsi_info_reply, handle: () => ({ error: NO_ERR, scsi_info: [] }) })
      // draft §10: no extension classes are offered; selecting none is fine, selecting any is not.
      reg.register(4, M4.NDMP4_CONFIG_GET_EXT_LIST, { request: null, reply: v4.ndmp4_config_get_ext_list_reply, handle: () => ({ error: NO_ERR, class_list: [] }) })
      reg.register(4, M4.NDMP4_CONFIG_SET_EXT_LIST, {
        request: v4.ndmp4_config_set_ext_list_request,
        reply: v4.ndmp4_config_set_ext_list_reply,
        handle: (_s, req) => {
          if (req.ndmp_selected_ext.length > 0) throw new NdmpError(v4.ndmp4_error.NDMP4_CLASS_NOT_SUPPORTED, 'no extension classes are offered')
          return { error: NO_ERR }
        },
      })
    },
  }
}
