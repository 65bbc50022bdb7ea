#!/bin/bash
# NFS-Ganesha (Debian 12: nfs-ganesha, nfs-ganesha-mem, nfs-ganesha-vfs, rpcbind) on loopback,
# as the reference peer for `tsnfs bench --compare`. A thin wrapper over the team's shared
# script (../shared/tools/ganesha/ganesha.sh, configs next to it; see its README.md):
#
#   bench/ganesha.sh start mem|vfs [--fresh]   start (MEM: FSAL_MEM, VFS: /tmp/ganesha-vfs/export)
#   bench/ganesha.sh restart mem               MEM's heap only grows: restart before each run
#   bench/ganesha.sh stop mem|vfs
#   bench/ganesha.sh url mem|vfs               nfs://127.0.0.1/mem?nfsport=20490&mountport=20048
#
# Needs root (rpcbind on port 111; Ganesha runs No_Root_Squash). GANESHA_SH overrides the path.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GANESHA_SH="${GANESHA_SH:-$HERE/../../shared/tools/ganesha/ganesha.sh}"
[ -x "$GANESHA_SH" ] || { echo "ganesha.sh not found at $GANESHA_SH (set GANESHA_SH)" >&2; exit 1; }
[ -x /usr/bin/ganesha.nfsd ] || [ -x /usr/sbin/ganesha.nfsd ] ||
	{ echo "NFS-Ganesha is not installed: apt-get install nfs-ganesha nfs-ganesha-mem nfs-ganesha-vfs rpcbind" >&2; exit 1; }
exec "$GANESHA_SH" "$@"
