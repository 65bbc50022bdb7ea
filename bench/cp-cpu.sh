#!/usr/bin/env bash
# User and system CPU of one download (or any copy) per tool, in rotating order,
# medians of RUNS: what `tsnfs cp` costs beyond what nfs-cp does, and a build
# against another (bench/README.md, "tsnfs cp CPU, session 32").
#
#   bench/cp-cpu.sh RUNS SRC DST TOOL...
#
# TOOL: a path to a build's dist/cli/main.js (runs `node TOOL cp SRC DST`) or
# `nfs-cp` (runs `nfs-cp SRC DST`). DST is removed before each run unless it
# is /dev/null (nfs-cp will not write over a file). The CPU of each run is its
# process's own (bash `times`, which reads getrusage of the children: µs, not
# the 10 ms of /usr/bin/time). With a regular file as SRC's copy, compare the
# two with `cmp` yourself: this measures, it does not check.
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: $0 RUNS SRC DST TOOL..." >&2
  exit 2
fi
runs=$1 src=$2 dst=$3
shift 3
tools=("$@")
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# Seconds of user and system CPU of a command's process, as "user sys".
cpu_of() {
  bash -c '"$@" >/dev/null; times' _ "$@" | awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.4f %.4f\n", u[1] * 60 + u[2], s[1] * 60 + s[2] }'
}

uptime
for ((i = 0; i < runs; i++)); do
  n=${#tools[@]}
  for ((j = 0; j < n; j++)); do
    tool=${tools[$(((i + j) % n))]}
    [ "$dst" != /dev/null ] && rm -f "$dst"
    if [ "$tool" = nfs-cp ]; then cmd=(nfs-cp "$src" "$dst"); else cmd=(node "$tool" cp "$src" "$dst"); fi
    echo "$tool $(cpu_of "${cmd[@]}")" >>"$out"
  done
done
uptime
for tool in "${tools[@]}"; do
  awk -v t="$tool" '$1 == t { u[n] = $2 * 1000; s[n] = $3 * 1000; c[n] = ($2 + $3) * 1000; n++ }
    function med(a, n,   i, j, x) { for (i = 1; i < n; i++) { x = a[i]; for (j = i - 1; j >= 0 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x } return n % 2 ? a[(n - 1) / 2] : (a[n / 2 - 1] + a[n / 2]) / 2 }
    END { printf "%-50s user %6.1f ms  system %6.1f ms  user+system %6.1f ms  (medians of %d)\n", t, med(u, n), med(s, n), med(c, n), n }' "$out"
done
