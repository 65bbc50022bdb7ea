#!/usr/bin/env bash
# A single-node Ceph for the cluster backend's tests (issue 17 §4): one monitor, one manager,
# one OSD on memstore and radosgw serving S3 on 127.0.0.1:PORT, everything (configuration,
# keyrings, monitor store, OSD, logs, pid files, admin sockets) under DIR. No cephadm, no
# containers, no systemd: each daemon is started by hand and detaches (Ceph daemons fork
# unless given -f), so this script returns with them running.
#
#   deploy/ceph/start.sh DIR [PORT]      PORT: the S3 port, 7480 by default (radosgw's own)
#
# Environment: TSNFS_CEPH_MON_PORT_V2 and TSNFS_CEPH_MON_PORT_V1 (the monitor's ports, 3300 and
# 6789), TSNFS_CEPH_MEMSTORE_BYTES (the OSD's capacity, 4 GiB), for a second Ceph beside one.
#
# The steps are those of Ceph's manual deployment (doc/install/manual-deployment.rst) and of
# src/vstart.sh: keyrings with ceph-authtool, a monitor map with monmaptool, `ceph-mon --mkfs`,
# then the daemons. Every key (manager, OSD, gateway) is generated up front and imported into
# the monitor's keyring before --mkfs, so the only `ceph` command run is `ceph osd new` (each
# one is a Python process of ~0.5 s).
#
# At the end it writes DIR/s3.env (sourceable: TSNFS_S3_URL, TSNFS_S3_KEYS and the AWS_*
# variables) and DIR/s3.cred (a tsnfs credentials file) with the fixed test user's keys,
# then proves the gateway by a signed PutObject and reports the time of each step and each
# daemon's resident memory.
# Run again while everything is up, it says so and exits 0; while the monitor and the OSD run
# but the gateway or the manager died, it starts those again (the objects are kept); after
# the OSD died (memstore keeps objects in its memory, so they are gone), it stops what is
# left of the old cluster, wipes DIR and starts afresh. It exits non-zero with the log's tail when a
# step fails. Stop it with deploy/ceph/stop.sh DIR.
set -uo pipefail

usage() { echo "usage: $0 DIR [PORT]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
DIR=$1
PORT=${2:-7480}
case $PORT in ''|*[!0-9]*) usage ;; esac
# The monitor's ports (msgr2 and legacy v1); override when the defaults are taken.
MON_PORT_V2=${TSNFS_CEPH_MON_PORT_V2:-3300}
MON_PORT_V1=${TSNFS_CEPH_MON_PORT_V1:-6789}
# Bytes the memstore OSD reports as its capacity. It allocates only what is stored, but
# radosgw answers 507 once the OSD passes its full ratio (95%), so this caps what tests may
# keep in the bucket at once.
MEMSTORE_BYTES=${TSNFS_CEPH_MEMSTORE_BYTES:-4294967296}
# The test user's fixed keys: for tests on this machine only (the gateway listens on
# 127.0.0.1). AWS access keys are 20 characters and secret keys 40; radosgw takes any.
ACCESS_KEY=TSNFSTESTACCESSKEY01
SECRET_KEY=tsnfs-test-secret-key-0123456789abcdefgh
REGION=us-east-1
MARKER='# tsnfs deploy/ceph/start.sh'
for n in "$MON_PORT_V2" "$MON_PORT_V1" "$MEMSTORE_BYTES"; do
  case $n in ''|*[!0-9]*) echo "ceph: '$n' is not a number (TSNFS_CEPH_MON_PORT_V2/V1, TSNFS_CEPH_MEMSTORE_BYTES)" >&2; exit 2 ;; esac
done

mkdir -p "$DIR" || exit 1
DIR=$(cd "$DIR" && pwd)
CONF=$DIR/ceph.conf
LOG=$DIR/log/start.log
HERE=$(cd "$(dirname "$0")" && pwd)
URL=http://127.0.0.1:$PORT

now() { date +%s.%N; }
T0=$(now)
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# The tail of our log and of the daemon logs that exist, then exit 1.
die() {
  echo "ceph: $1 (after $(secs "$T0" "$(now)") s)" >&2
  for f in "$LOG" "$DIR"/log/mon.a.log "$DIR"/log/mgr.x.log "$DIR"/log/osd.0.log "$DIR"/log/client.rgw.x.log; do
    [ -s "$f" ] || continue
    echo "--- tail of $f" >&2
    tail -15 "$f" >&2
  done
  exit 1
}

# step NAME COMMAND...: run it with its output in the log, print how long it took.
step() {
  local name=$1 t
  shift
  t=$(now)
  echo "+ $*" >>"$LOG"
  "$@" >>"$LOG" 2>&1 || die "$name failed"
  printf 'ceph: %-34s %5s s\n' "$name" "$(secs "$t" "$(now)")"
}

# wait_for NAME SECONDS COMMAND...: retry COMMAND every 0.2 s until it succeeds.
wait_for() {
  local name=$1 limit=$2 t deadline
  shift 2
  t=$(now)
  deadline=$(awk -v a="$t" -v b="$limit" 'BEGIN { printf "%d", a + b }')
  until "$@" >>"$LOG" 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || die "$name: not within $limit s"
    sleep 0.2
  done
  printf 'ceph: %-34s %5s s\n' "$name" "$(secs "$t" "$(now)")"
}

for tool in ceph ceph-authtool monmaptool ceph-mon ceph-mgr ceph-osd radosgw radosgw-admin curl; do
  command -v "$tool" >/dev/null || { echo "ceph: $tool is missing (apt-get install ceph-mon ceph-mgr ceph-osd radosgw ceph-common curl)" >&2; exit 1; }
done

alive() { [ -s "$DIR/run/$1.pid" ] && kill -0 "$(cat "$DIR/run/$1.pid")" 2>/dev/null; }
gateway_up() { curl -s -o /dev/null --max-time 2 "$URL/"; }

# The proof: a signed bucket creation and PutObject (curl signs with SigV4 itself).
probe() {
  local bucket=tsnfs-start-probe-$$ sig=(--aws-sigv4 "aws:amz:$REGION:s3" --user "$ACCESS_KEY:$SECRET_KEY" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD')
  curl -sSf --max-time 10 "${sig[@]}" -X PUT "$URL/$bucket" &&
  curl -sSf --max-time 10 "${sig[@]}" -X PUT --data-binary 'tsnfs' "$URL/$bucket/hello" &&
  [ "$(curl -sSf --max-time 10 "${sig[@]}" "$URL/$bucket/hello")" = tsnfs ] &&
  curl -sSf --max-time 10 "${sig[@]}" -X DELETE "$URL/$bucket/hello" &&
  curl -sSf --max-time 10 "${sig[@]}" -X DELETE "$URL/$bucket"
}

# finish WHAT: the time since the start and each daemon's resident memory.
rss() { awk '/^VmRSS/ { printf "%d", $2 / 1024 }' "/proc/$(cat "$DIR/run/$1.pid")/status" 2>/dev/null; }
finish() {
  local total mem
  total=$(secs "$T0" "$(now)")
  mem="mon $(rss mon.a) MiB, mgr $(rss mgr.x) MiB, osd $(rss osd.0) MiB, radosgw $(rss client.rgw.x) MiB"
  echo "ceph: $1 in $total s: S3 at $URL, keys in $DIR/s3.env; stop with $HERE/stop.sh $DIR"
  echo "ceph: resident memory: $mem"
  echo "$1 $(date -u +%FT%TZ) in $total s; $mem" >>"$DIR/started"
}

if [ -f "$CONF" ] && [ -f "$DIR/s3.env" ] && alive mon.a && alive mgr.x && alive osd.0 && alive client.rgw.x && gateway_up; then
  echo "ceph: already running under $DIR (S3 at $URL; keys in $DIR/s3.env)"
  exit 0
fi

# The monitor and the OSD (which holds the objects, in its memory) still run: start only what
# died of the manager and the gateway, so the buckets survive (a test that stops the gateway).
if [ -f "$CONF" ] && [ -f "$DIR/s3.env" ] && alive mon.a && alive osd.0 && grep -qF "endpoint=127.0.0.1:$PORT" "$CONF"; then
  echo "ceph: the monitor and the OSD run under $DIR; starting what is missing" | tee -a "$LOG"
  alive mgr.x || step "manager start" ceph-mgr -c "$CONF" -i x
  alive client.rgw.x || step "gateway start" radosgw -c "$CONF" -n client.rgw.x
  wait_for "gateway answers" 150 curl -sf -o /dev/null --max-time 2 "$URL/"
  wait_for "first PutObject" 30 probe
  finish "up again"
  exit 0
fi

# What is left of an earlier cluster here is stopped and wiped; anything else is refused.
if [ -n "$(ls -A "$DIR")" ]; then
  if ! head -1 "$CONF" 2>/dev/null | grep -qF "$MARKER"; then
    echo "ceph: $DIR is not empty and holds no cluster of ours; refusing to wipe it" >&2
    exit 1
  fi
  "$HERE/stop.sh" "$DIR" || exit 1
  rm -rf "${DIR:?}"/*
fi
mkdir -p "$DIR"/{log,run,crash,mon,mgr/mgr.x,osd/osd.0,rgw} || exit 1
: >"$LOG"

for p in "$MON_PORT_V2" "$MON_PORT_V1" "$PORT"; do
  # -H: no header, so any line is a listener on that port
  if [ "$(ss -Hltn "sport = :$p" 2>/dev/null | wc -l)" -ne 0 ]; then
    die "port $p is already in use (another Ceph? deploy/ceph/stop.sh its DIR; or set TSNFS_CEPH_MON_PORT_V2/V1)"
  fi
done

# The manager imports every Python module it finds: 300 MiB resident with Debian's set.
# S3 needs none of them, but the always-on ones (balancer, crash, devicehealth,
# orchestrator, pg_autoscaler, progress, rbd_support, status, telemetry, volumes) must load
# or the cluster reports HEALTH_ERR "mgr modules have failed"; the rest stay unloaded
# (150 MiB resident). iostat is the one enabled module (`ceph iostat`).
MGR_OFF=alerts,cephadm,dashboard,diskprediction_local,influx,insights,k8sevents,localpool,mds_autoscaler,mirroring,nfs,osd_perf_query,osd_support,prometheus,restful,rook,selftest,snap_schedule,stats,telegraf,test_orchestrator,zabbix

FSID=$(cat /proc/sys/kernel/random/uuid)
OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
MON_ADDRS="[v2:127.0.0.1:$MON_PORT_V2,v1:127.0.0.1:$MON_PORT_V1]"

# Options that make one OSD a healthy cluster: pools of size 1 (mon_allow_pool_size_one lets
# them exist, the warning about no redundancy is silenced), CRUSH choosing among OSDs rather
# than hosts, few placement groups per pool (radosgw makes 7 pools; 32 each by default
# would pass mon_max_pg_per_osd) and no autoscaler to change them.
# paxos_propose_interval: the monitor batches map changes for 1 s by default; radosgw creates
# its pools one after another at first start (and the bucket pools at the first bucket and
# object), each waiting for a new OSD map, so 0.1 s brings the start from ~22 s to ~13 s.
# mon_data_avail_crit: the monitor shuts itself down below 5% free disk by default; a
# test machine's disk is often that full, and the monitor's store is small.
cat >"$CONF" <<CONF || exit 1
$MARKER (fsid $FSID); regenerated by every fresh start
[global]
fsid = $FSID
mon host = $MON_ADDRS
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
pid file = $DIR/run/\$name.pid
log file = $DIR/log/\$name.log
crash dir = $DIR/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon max pg per osd = 1000
mon data avail warn = 2
mon data avail crit = 1
paxos propose interval = 0.1

[mon]
mon data = $DIR/mon/\$name

[mgr]
mgr data = $DIR/mgr/\$name
mgr initial modules = iostat
mgr disabled modules = $MGR_OFF
keyring = $DIR/mgr/\$name/keyring

[osd]
osd data = $DIR/osd/\$name
keyring = $DIR/osd/\$name/keyring
osd objectstore = memstore
memstore device bytes = $MEMSTORE_BYTES

[client.admin]
keyring = $DIR/keyring

[client.rgw.x]
keyring = $DIR/rgw/keyring
rgw data = $DIR/rgw
rgw frontends = beast endpoint=127.0.0.1:$PORT
CONF

keys() {
  ceph-authtool --create-keyring "$DIR/mon.keyring" --gen-key -n mon. --cap mon 'allow *' &&
  ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' &&
  ceph-authtool --create-keyring "$DIR/mgr/mgr.x/keyring" --gen-key -n mgr.x \
    --cap mon 'allow profile mgr' --cap osd 'allow *' --cap mds 'allow *' &&
  ceph-authtool --create-keyring "$DIR/osd/osd.0/keyring" --gen-key -n osd.0 \
    --cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *' &&
  ceph-authtool --create-keyring "$DIR/rgw/keyring" --gen-key -n client.rgw.x \
    --cap mon 'allow rw' --cap osd 'allow rwx' &&
  for k in keyring mgr/mgr.x/keyring osd/osd.0/keyring rgw/keyring; do
    ceph-authtool "$DIR/mon.keyring" --import-keyring "$DIR/$k" || return 1
  done
}
step "keyrings" keys
step "monitor map" monmaptool --create --fsid "$FSID" --addv a "$MON_ADDRS" "$DIR/monmap"
step "monitor store (ceph-mon --mkfs)" ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/mon.keyring"
step "monitor start" ceph-mon -c "$CONF" -i a
step "manager start" ceph-mgr -c "$CONF" -i x
# `ceph osd new` waits for the monitor to form its quorum (of one) and registers osd.0.
step "osd id (ceph osd new)" timeout 60 ceph -c "$CONF" --connect-timeout 50 osd new "$OSD_UUID" 0
step "osd store (ceph-osd --mkfs)" ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$OSD_UUID"
step "osd start" ceph-osd -c "$CONF" -i 0
step "gateway start" radosgw -c "$CONF" -n client.rgw.x
# radosgw creates its pools before it listens; it listens only once they are usable.
wait_for "gateway answers" 150 curl -sf -o /dev/null --max-time 2 "$URL/"
step "S3 user (radosgw-admin)" radosgw-admin -c "$CONF" user create --uid tsnfs --display-name "tsnfs tests" \
  --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY"

cat >"$DIR/s3.env" <<ENV || exit 1
# The S3 gateway of the test Ceph under $DIR (deploy/ceph/start.sh); sourceable.
TSNFS_S3_URL=$URL
TSNFS_S3_KEYS=$ACCESS_KEY:$SECRET_KEY
TSNFS_S3_REGION=$REGION
AWS_ACCESS_KEY_ID=$ACCESS_KEY
AWS_SECRET_ACCESS_KEY=$SECRET_KEY
AWS_REGION=$REGION
ENV

# The same keys as a tsnfs credentials file (credentials=DIR/s3.cred in an export's options;
# vfs/cluster/clients/config.ts), readable by root only as tsnfs asks.
( umask 077 && printf 's3_access_key=%s\ns3_secret_key=%s\n' "$ACCESS_KEY" "$SECRET_KEY" >"$DIR/s3.cred" ) || exit 1

wait_for "first PutObject" 30 probe
finish up
