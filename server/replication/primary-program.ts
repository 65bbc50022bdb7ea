/*
 * The replication program as a primary answers it (on its NFS port): STATUS
 * and HEARTBEAT for `tsnfs replication status` and the witnesses' probes;
 * HELLO, APPEND and TAKEOVER are a standby's procedures, refused with
 * REPL_NOT_STANDBY. A HELLO or HEARTBEAT naming a higher epoch than ours
 * means another node has taken over: this one is fenced at once.
 */
import { repl_role, repl_stat as STAT, TSNFS_REPL_PROG } from '../../xdr/generated/replication.ts'
import { defineProgram } from '../rpc/program.ts'
import type { RpcProgram } from '../rpc/program.ts'
import type { PrimaryReplication } from './primary.ts'
import { failuresToWire, roleToWire, statusToWire } from './status.ts'

export function createPrimaryProgram(primary: PrimaryReplication): RpcProgram {
  const superseded = (epoch: bigint): boolean => {
    if (epoch <= primary.epoch) return false
    primary.superseded(epoch)
    return true
  }
  return defineProgram(TSNFS_REPL_PROG, 'TSNFS_REPL_V1', {
    REPL_NULL: () => undefined,
    REPL_HELLO: (a) => {
      superseded(a.epoch)
      return { status: STAT.REPL_NOT_STANDBY }
    },
    REPL_HEARTBEAT: (a) => {
      if (superseded(a.epoch)) return { status: STAT.REPL_OK, ok: { role: repl_role.REPL_FENCED, epoch: primary.epoch } }
      return { status: STAT.REPL_OK, ok: { role: roleToWire(primary.view().role), epoch: primary.epoch } }
    },
    REPL_APPEND: () => ({ status: STAT.REPL_NOT_STANDBY }),
    REPL_STATUS: () => ({ status: STAT.REPL_OK, ok: statusToWire(primary.view()) }),
    REPL_TAKEOVER: () => ({ status: STAT.REPL_NOT_STANDBY }),
    // A resync sent to a primary: a higher epoch fences this node, as for HELLO.
    REPL_RESYNC_BEGIN: (a) => (superseded(a.epoch), { status: STAT.REPL_NOT_STANDBY }),
    REPL_RESYNC_DIR: (a) => (superseded(a.epoch), { status: STAT.REPL_NOT_STANDBY }),
    REPL_RESYNC_SUMS: (a) => (superseded(a.epoch), { status: STAT.REPL_NOT_STANDBY }),
    REPL_RESYNC_DATA: (a) => (superseded(a.epoch), { status: STAT.REPL_NOT_STANDBY }),
    REPL_RESYNC_END: (a) => (superseded(a.epoch), { status: STAT.REPL_NOT_STANDBY }),
    REPL_DRC: (a) => (superseded(a.epoch), { status: STAT.REPL_NOT_STANDBY }),
    REPL_DRC_HELD: (a) => (superseded(a.epoch), { status: STAT.REPL_NOT_STANDBY }),
    REPL_APPEND_DRC: () => ({ append: { status: STAT.REPL_NOT_STANDBY }, drc: STAT.REPL_NOT_STANDBY }),
    REPL_FAILURES: () => ({ status: STAT.REPL_OK, ok: failuresToWire(primary.view().failures) }),
  })
}
