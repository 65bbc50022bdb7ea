#!/bin/bash
# NFS-Ganesha on loopback, the reference peer for `tsnfs bench --compare` and for trying
# the client by hand (Debian 12: apt-get install nfs-ganesha nfs-ganesha-mem nfs-ganesha-vfs
# rpcbind). Needs root.
#
#   bench/ganesha.sh start NAME [--fresh]    start and wait until NFS answers; NAME is
#                                            mem (FSAL_MEM) or vfs (FSAL_VFS)
#   bench/ganesha.sh stop NAME
#   bench/ganesha.sh restart NAME [--fresh]  MEM's memory only grows: restart it before each run
#   bench/ganesha.sh status NAME
#   bench/ganesha.sh url NAME                the libnfs URL, with both ports (no portmapper needed)
#   bench/ganesha.sh rpcbind-stop            stop the rpcbind this script started, if any
#
# The configurations are bench/ganesha/ganesha-NAME.conf. An instance lives in
# $GANESHA_STATE/ganesha-NAME (default /tmp/ganesha-NAME): the configuration it runs with
# (a copy of the template with the ports, paths and plugin directory filled in), its log,
# its pid, the recovery/ directory Ganesha insists on, and for vfs the exported directory
# export/ (emptied by --fresh). GANESHA_NFS_PORT and GANESHA_MNT_PORT replace the
# template's ports (for running beside something that holds them).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE="${GANESHA_STATE:-/tmp}"
RPCBIND_PID="$STATE/ganesha-rpcbind.pid"

die() {
	echo "ganesha.sh: $*" >&2
	exit 1
}

usage() {
	sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
}

template() {
	[[ "$1" =~ ^[a-z]+$ ]] && [ -f "$HERE/ganesha/ganesha-$1.conf" ] ||
		die "no instance '$1' (bench/ganesha/ has: $(cd "$HERE/ganesha" && ls ganesha-*.conf | sed 's/^ganesha-//; s/\.conf$//' | tr '\n' ' '))"
	echo "$HERE/ganesha/ganesha-$1.conf"
}

# The value of `Key = value;` in a config (first occurrence, quotes dropped).
value() {
	sed -n "s/^[[:space:]]*$2[[:space:]]*=[[:space:]]*\"\{0,1\}\([^\";]*\)\"\{0,1\};.*/\1/p" "$1" | head -1
}

is_vfs() {
	grep -qE '^[[:space:]]*Name[[:space:]]*=[[:space:]]*VFS;' "$1"
}

ganesha_bin() {
	local b
	for b in /usr/bin/ganesha.nfsd /usr/sbin/ganesha.nfsd; do
		[ -x "$b" ] && { echo "$b"; return; }
	done
	die "ganesha.nfsd not found: apt-get install nfs-ganesha nfs-ganesha-mem nfs-ganesha-vfs rpcbind"
}

# Debian puts the FSAL plugins under the multiarch directory.
plugins_dir() {
	local d
	for d in /usr/lib/*/ganesha /usr/lib64/ganesha /usr/lib/ganesha; do
		[ -e "$d/libfsal$1.so" ] && { echo "$d"; return; }
	done
	die "libfsal$1.so not found: apt-get install nfs-ganesha-$1"
}

# The template with this instance's ports, state paths and plugin directory.
render() {
	local name="$1" tpl="$2" dir="$3" fsal=mem
	is_vfs "$tpl" && fsal=vfs
	local nfs_port="${GANESHA_NFS_PORT:-$(value "$tpl" NFS_Port)}"
	local mnt_port="${GANESHA_MNT_PORT:-$(value "$tpl" MNT_Port)}"
	local sed_args=(
		-e "s|^\([[:space:]]*NFS_Port[[:space:]]*=\).*|\1 $nfs_port;|"
		-e "s|^\([[:space:]]*MNT_Port[[:space:]]*=\).*|\1 $mnt_port;|"
		-e "s|^\([[:space:]]*RecoveryRoot[[:space:]]*=\).*|\1 \"$dir/recovery\";|"
		-e "s|^\([[:space:]]*Plugins_Dir[[:space:]]*=\).*|\1 \"$(plugins_dir "$fsal")\";|"
	)
	# FSAL_VFS exports a real directory; FSAL_MEM's Path is only a name.
	if [ "$fsal" = vfs ]; then sed_args+=(-e "s|^\([[:space:]]*Path[[:space:]]*=\).*|\1 \"$dir/export\";|"); fi
	sed "${sed_args[@]}" "$tpl"
	echo "# rendered by bench/ganesha.sh for instance $name"
}

rpcbind_up() {
	rpcinfo -p 127.0.0.1 >/dev/null 2>&1
}

# This Ganesha build exits at start ("Cannot register NFS V3 on TCP") when no portmapper
# answers, and has no setting to skip registering, so one is started if none runs. It
# listens on all addresses: Debian 12's rpcbind 1.2.6 crashes (double free) with
# `-h 127.0.0.1`. Clients never need it; the URLs carry both ports.
ensure_rpcbind() {
	rpcbind_up && return 0
	local bin="" b
	for b in "$(command -v rpcbind 2>/dev/null || true)" /usr/sbin/rpcbind /sbin/rpcbind; do
		[ -n "$b" ] && [ -x "$b" ] && { bin="$b"; break; }
	done
	[ -n "$bin" ] || die "rpcbind not found: apt-get install rpcbind"
	mkdir -p /run/rpcbind "$STATE"
	setsid "$bin" -f >"$STATE/ganesha-rpcbind.out" 2>&1 </dev/null &
	echo $! >"$RPCBIND_PID"
	for _ in $(seq 50); do
		rpcbind_up && return 0
		sleep 0.1
	done
	die "rpcbind did not answer on 127.0.0.1:111 (see $STATE/ganesha-rpcbind.out)"
}

alive() {
	[ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null
}

pid_of() {
	cat "$STATE/ganesha-$1/pid" 2>/dev/null || true
}

# An NFS NULL call straight to the port: the daemon is serving.
answers() {
	rpcinfo -n "$1" -t 127.0.0.1 100003 3 >/dev/null 2>&1
}

start() {
	local name="$1" fresh="${2:-}" tpl dir conf port pid
	tpl="$(template "$name")"
	dir="$STATE/ganesha-$name"
	[ "$(id -u)" = 0 ] || die "must run as root (rpcbind on port 111; Ganesha serves as root)"
	pid="$(pid_of "$name")"
	alive "$pid" && die "$name is already running (pid $pid)"
	local bin
	bin="$(ganesha_bin)"
	mkdir -p "$dir/recovery"
	conf="$dir/ganesha.conf"
	render "$name" "$tpl" "$dir" >"$conf"
	if is_vfs "$conf"; then
		[ "$fresh" = --fresh ] && rm -rf "${dir:?}/export"
		mkdir -p "$dir/export"
	fi
	port="$(value "$conf" NFS_Port)"
	ensure_rpcbind
	rm -f "$dir/ganesha.pid"
	# -F keeps it in the foreground, so $! is the daemon; -p: the default pid directory
	# (/var/run/ganesha) does not exist; -L: the default log is syslog.
	setsid "$bin" -F -f "$conf" -L "$dir/ganesha.log" -p "$dir/ganesha.pid" -N NIV_EVENT \
		>"$dir/stdout" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$dir/pid"
	for _ in $(seq 150); do
		if ! alive "$pid"; then
			tail -n 8 "$dir/ganesha.log" >&2 2>/dev/null || true
			die "ganesha $name exited while starting; log: $dir/ganesha.log"
		fi
		if answers "$port"; then
			echo "ganesha $name: pid $pid, $(url "$name")"
			return 0
		fi
		sleep 0.2
	done
	kill -TERM "$pid" 2>/dev/null || true
	die "ganesha $name did not answer on 127.0.0.1:$port within 30 s; log: $dir/ganesha.log"
}

stop() {
	local name="$1" dir pid
	template "$name" >/dev/null
	dir="$STATE/ganesha-$name"
	pid="$(pid_of "$name")"
	if ! alive "$pid"; then
		echo "ganesha $name is not running"
		rm -f "$dir/pid"
		return 0
	fi
	# It unregisters from rpcbind and exits cleanly on SIGTERM, in about 1.5 s.
	kill -TERM "$pid"
	for _ in $(seq 150); do
		if ! alive "$pid"; then
			rm -f "$dir/pid"
			echo "ganesha $name (pid $pid) stopped"
			return 0
		fi
		sleep 0.2
	done
	echo "ganesha $name (pid $pid) still running 30 s after SIGTERM: SIGKILL" >&2
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$dir/pid"
}

status() {
	local name="$1" pid port
	template "$name" >/dev/null
	pid="$(pid_of "$name")"
	if ! alive "$pid"; then
		echo "ganesha $name is not running"
		return 1
	fi
	port="$(value "$STATE/ganesha-$name/ganesha.conf" NFS_Port)"
	if answers "$port"; then
		echo "ganesha $name: pid $pid, answering on 127.0.0.1:$port"
	else
		echo "ganesha $name: pid $pid, NOT answering on 127.0.0.1:$port"
		return 1
	fi
}

# From the configuration the instance runs with, or the template (and port overrides) when stopped.
url() {
	local name="$1" conf nfs_port mnt_port
	conf="$STATE/ganesha-$name/ganesha.conf"
	if alive "$(pid_of "$name")" && [ -f "$conf" ]; then
		nfs_port="$(value "$conf" NFS_Port)"
		mnt_port="$(value "$conf" MNT_Port)"
	else
		conf="$(template "$name")"
		nfs_port="${GANESHA_NFS_PORT:-$(value "$conf" NFS_Port)}"
		mnt_port="${GANESHA_MNT_PORT:-$(value "$conf" MNT_Port)}"
	fi
	echo "nfs://127.0.0.1$(value "$conf" Pseudo)?nfsport=$nfs_port&mountport=$mnt_port"
}

rpcbind_stop() {
	local pid
	pid="$(cat "$RPCBIND_PID" 2>/dev/null || true)"
	if alive "$pid"; then
		kill -TERM "$pid"
		rm -f "$RPCBIND_PID"
		echo "rpcbind (pid $pid) stopped"
	else
		echo "no rpcbind started by this script is running"
	fi
}

case "${1:-}" in
start) start "${2:?instance: mem or vfs}" "${3:-}" ;;
stop) stop "${2:?instance: mem or vfs}" ;;
restart)
	stop "${2:?instance: mem or vfs}"
	start "$2" "${3:-}"
	;;
status) status "${2:?instance: mem or vfs}" ;;
url) url "${2:?instance: mem or vfs}" ;;
rpcbind-stop) rpcbind_stop ;;
*) usage ;;
esac
