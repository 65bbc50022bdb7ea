#!/usr/bin/env bash
# Stop the Ceph that deploy/ceph/start.sh started under DIR: each daemon by the pid in its
# pid file (SIGTERM, then SIGKILL after 10 s), never by name, so another Ceph on the machine
# is left alone. With --wipe, DIR is removed as well (only if it holds a cluster of ours).
#
#   deploy/ceph/stop.sh DIR [--wipe]
set -uo pipefail

[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: $0 DIR [--wipe]" >&2; exit 2; }
DIR=$1
WIPE=${2:-}
[ -z "$WIPE" ] || [ "$WIPE" = --wipe ] || { echo "usage: $0 DIR [--wipe]" >&2; exit 2; }
[ -d "$DIR" ] || { echo "ceph: $DIR does not exist; nothing to stop"; exit 0; }
MARKER='# tsnfs deploy/ceph/start.sh'

# stop NAME...: SIGTERM to each daemon named, then wait for all of them (SIGKILL after 10 s).
stop() {
  local name f pid pids=() left=()
  for name in "$@"; do
    f=$DIR/run/$name.pid
    [ -s "$f" ] || continue
    pid=$(cat "$f")
    # a pid file outlives its process; the number may since belong to something else
    if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qE '(ceph-(mon|mgr|osd)|radosgw) '; then
      kill -TERM "$pid" && pids+=("$pid") && echo "ceph: stopping $name (pid $pid)"
    fi
    rm -f "$f"
  done
  for _ in $(seq 1 50); do
    left=()
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left+=("$pid"); done
    [ ${#left[@]} -eq 0 ] && return 0
    sleep 0.2
  done
  for pid in "${left[@]}"; do
    echo "ceph: pid $pid ignored SIGTERM for 10 s; SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null
  done
}

# The gateway first, on its own: it unregisters from the cluster as it shuts down (2 s), and
# waits for its alarm (120 s) if the monitor and OSD are already gone. The rest together.
stop client.rgw.x
stop osd.0 mgr.x mon.a

if [ "$WIPE" = --wipe ]; then
  if head -1 "$DIR/ceph.conf" 2>/dev/null | grep -qF "$MARKER"; then
    rm -rf "${DIR:?}" && echo "ceph: removed $DIR"
  else
    echo "ceph: $DIR holds no cluster of ours; not removed" >&2
    exit 1
  fi
fi
