/*
 * MOUNT versions 3 and 1 (RFC 1813 §5.2; RFC 1094 Appendix A). Every
 * registered procedure answers (ANCHORS row 14: a silent EXPORT or DUMP hangs
 * showmount and discovery tools). Version 1 exists for showmount, which asks
 * v1 for EXPORT and DUMP; its MNT would hand out an NFSv2 handle, which this
 * server does not serve.
 */
import type { dirpath, exportnode, mountbody, mountres3 } from '../../xdr/generated/mount.ts'
import { MOUNT_PROGRAM, mountstat3 } from '../../xdr/generated/mount.ts'
import type { Logger } from '../logger.ts'
import { combineVersions, defineVersion } from '../rpc/program.ts'
import type { CallContext, RpcProgram } from '../rpc/program.ts'
import type { Rmtab } from '../state.ts'
import type { MountResolver } from './mnt.ts'

/** RFC 5531 §8.2 flavor numbers; AUTH_SYS first (specs/README.md P16: clients prefer the first). */
const AUTH_SYS = 1

/** RFC 1094 A.3: NFSv2 MNT failures are errno values; 13 = EACCES. */
const V1_EACCES = 13

export interface MountDeps {
  resolver: MountResolver
  rmtab: Rmtab
  exportsList(): { path: string; groups: string[] }[]
  log: Logger
}

export function createMountProgram(deps: MountDeps): RpcProgram {
  const { rmtab, log } = deps

  async function mnt(path: dirpath, call: CallContext): Promise<mountres3> {
    const r = await deps.resolver.mount(path, call)
    if (!r.ok) return { fhs_status: r.status }
    // The mount list is informational (a client that crashes never unmounts): a failed save must not fail MNT.
    await rmtab.add(call.peer.address, r.path).catch((err: unknown) => {
      log.warn({ err }, 'could not save the mount list')
    })
    return { fhs_status: mountstat3.MNT3_OK, mountinfo: { fhandle: r.fh, auth_flavors: [AUTH_SYS] } }
  }

  function dump(): mountbody[] {
    return rmtab.list().map((e) => ({ ml_hostname: Buffer.from(e.host), ml_directory: Buffer.from(e.path) }))
  }

  async function umnt(path: dirpath, call: CallContext): Promise<undefined> {
    await rmtab.remove(call.peer.address, deps.resolver.canonical(path)).catch((err: unknown) => {
      log.warn({ err }, 'could not save the mount list')
    })
    return undefined
  }

  async function umntall(_: undefined, call: CallContext): Promise<undefined> {
    await rmtab.removeAll(call.peer.address).catch((err: unknown) => {
      log.warn({ err }, 'could not save the mount list')
    })
    return undefined
  }

  function exportList(): exportnode[] {
    return deps.exportsList().map((e) => ({
      ex_dir: Buffer.from(e.path),
      // An empty group list means everyone (RFC 1813 §5.2.5; showmount prints "(everyone)").
      ex_groups: e.groups.filter((g) => g !== '*').map((g) => ({ gr_name: Buffer.from(g) })),
    }))
  }

  const v3 = defineVersion(MOUNT_PROGRAM, 'MOUNT_V3', {
    MOUNTPROC3_NULL: () => undefined,
    MOUNTPROC3_MNT: mnt,
    MOUNTPROC3_DUMP: dump,
    MOUNTPROC3_UMNT: umnt,
    MOUNTPROC3_UMNTALL: umntall,
    MOUNTPROC3_EXPORT: exportList,
  })
  const v1 = defineVersion(MOUNT_PROGRAM, 'MOUNT_V1', {
    MOUNTPROC_NULL: () => undefined,
    MOUNTPROC_MNT: () => ({ fhs_status: V1_EACCES }),
    MOUNTPROC_DUMP: dump,
    MOUNTPROC_UMNT: umnt,
    MOUNTPROC_UMNTALL: umntall,
    MOUNTPROC_EXPORT: exportList,
  })
  return combineVersions(v3, v1)
}
