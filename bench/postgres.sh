#!/usr/bin/env bash
# PostgreSQL mode against SQLite mode, side by side in the same run: two Wharf servers built from
# the same code, A on a private PostgreSQL 15 cluster (scripts/postgres.sh, unix socket), B on its
# data directory's SQLite file, driven by ../shared/bench/regbench.mjs --compare (rounds alternate
# A,B,A,B...). Server CPU per operation is regbench's "srv cpu s" divided by the count.
#   bench/postgres.sh [regbench args...]     default: --scenario manifest-put,pull-manifest,tags-list
# Like compare.sh, Wharf runs as it ships (the compiled package through bin/wharf.js) with its
# defaults; WHARF_BENCH_FROM=src runs the TypeScript sources. The PostgreSQL server's own CPU is
# reported too (summed over its processes from /proc), since in that mode part of the work moves there.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
regbench=${REGBENCH:-$here/../shared/bench/regbench.mjs}
node=$here/node_modules/.bin/node
work=$(mktemp -d /tmp/wharf-bench-pg.XXXXXX)
# Its own directory: as root the cluster runs as `postgres`, which cannot enter the private $work.
pgdir=$(mktemp -d /tmp/wharf-bench-pgdata.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  sh "$here/scripts/postgres.sh" stop "$pgdir" || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { "$node" -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
wait_http() { for _ in $(seq 1 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }
# CPU seconds (user+system, in ticks) of this cluster's processes: the postmaster and its children
# (backends, writers); only of this cluster, not of any other on the machine.
pg_cpu() {
  local total=0 pid main
  main=$(head -1 "$pgdir/data/postmaster.pid")
  for pid in $main $(pgrep -P "$main" || true); do
    [ -r "/proc/$pid/stat" ] || continue
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$total"
}

if [ "${WHARF_BENCH_FROM:-package}" = src ]; then
  wharf=("$node" "$here/src/cli/main.ts")
else
  "$here/bench/build-package.sh" "$work/pkg"
  export PATH="$here/node_modules/.bin:$PATH"
  wharf=("$work/pkg/bin/wharf.js")
fi

pg_url=$(sh "$here/scripts/postgres.sh" start "$pgdir")
psql -q "$pg_url" -c 'create database wharf'
pg_url=${pg_url/\/postgres\?/\/wharf?}

export WHARF_ROOT_PASSWORD=bench-root-password
start() { # start NAME DATABASE_URL -> pid on stdout, port in $work/NAME.port
  local name=$1 url=$2 port
  port=$(free_port)
  WHARF_DATABASE_URL=$url "${wharf[@]}" admin group create --path bench --data "$work/$name" >/dev/null
  WHARF_DATABASE_URL=$url "${wharf[@]}" admin project create --path bench/r --data "$work/$name" >/dev/null
  WHARF_DATABASE_URL=$url "${wharf[@]}" serve --listen "127.0.0.1:$port" --data "$work/$name" \
    --log-level "${WHARF_BENCH_LOG_LEVEL:-info}" >"$work/$name.log" 2>&1 &
  echo "$port" >"$work/$name.port"
  pids+=("$!")
}
start pg "$pg_url"
apid=${pids[-1]}
start sqlite "sqlite:$work/sqlite/wharf.db"
bpid=${pids[-1]}
aport=$(cat "$work/pg.port")
bport=$(cat "$work/sqlite.port")
wait_http "http://127.0.0.1:$aport/v2/"
wait_http "http://127.0.0.1:$bport/v2/"
echo "A = wharf on PostgreSQL $(psql -tAq "$pg_url" -c 'show server_version') pid $apid :$aport   B = wharf on SQLite pid $bpid :$bport" >&2
echo "wharf: $(tr '\0' ' ' </proc/"$apid"/cmdline)" >&2

args=("$@")
[ ${#args[@]} -eq 0 ] && args=(--scenario manifest-put,pull-manifest,tags-list)
tick=$(getconf CLK_TCK)
pg_before=$(pg_cpu)
"$node" "$regbench" --url "http://127.0.0.1:$aport" --pid "$apid" --user root --password "$WHARF_ROOT_PASSWORD" \
  --compare "http://127.0.0.1:$bport" --pid2 "$bpid" "${args[@]}"
pg_after=$(pg_cpu)
echo "postgres server CPU over the whole run (all A rounds and their fixtures): $(awk "BEGIN { printf \"%.2f\", ($pg_after - $pg_before) / $tick }") s" >&2
