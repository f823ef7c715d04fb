#!/usr/bin/env bash
# One big layer through Wharf: memory and CPU per MiB for a multi-GiB push and pull.
#   bench/big-layer.sh [SIZE_MIB] [CHUNK_MIB]        defaults: 2048 MiB layer, 256 MiB chunks
# Starts Wharf on a free loopback port with a temp data dir, writes two random files of SIZE_MIB, then
#   1. pushes the first monolithically: one POST /blobs/uploads?digest= with the file streamed from
#      disk (curl -T);
#   2. pushes the second as a chunked upload: POST, PATCH per CHUNK_MIB with Content-Range (each chunk
#      read by dd and sent by curl --data-binary), PUT ?digest=. A distinct blob, so its commit is a
#      fresh one and not a rename over the blob pushed in step 1;
#   3. pulls each blob back through sha256sum (must match), then one to /dev/null (raw throughput).
#      The pulls read from the page cache (the blobs were just written).
# For each phase it prints wall time, MB/s (10^6 bytes/s), server CPU seconds (utime+stime of the
# whole process from /proc/PID/stat, all threads), CPU ms per MiB, the CPU split by thread name
# (/proc/PID/task/*/stat) and the server's peak RSS (VmHWM, reset per phase through clear_refs when
# the kernel allows it). "machine busy" is the non-idle CPU time of the whole machine in the phase
# (server + client + anything else running): compare it with server cpu to spot interference.
# Everything under the temp dir (two SIZE_MIB files and the server's data) is removed on exit.
# WHARF_BENCH_LOG_LEVEL (default info) sets the server's log level. WHARF_TREE (default: this
# checkout) is the source tree whose src/cli/main.ts is started, e.g. a `git archive` snapshot of one
# commit with a node_modules symlink (WHARF_TREE_REV names it in the output). Wharf runs as it
# ships (bench/build-package.sh: compiled, through bin/wharf.js); WHARF_BENCH_FROM=src runs the sources. The registry must
# accept anonymous pushes: there is no auth flow here.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
node=$here/node_modules/.bin/node
tree=${WHARF_TREE:-$here}
size_mib=${1:-2048}
chunk_mib=${2:-256}
size=$((size_mib * 1048576))
chunk=$((chunk_mib * 1048576))
hz=$(getconf CLK_TCK)

work=$(mktemp -d /tmp/wharf-big.XXXXXX)
spid=""
cleanup() {
  if [ -n "$spid" ]; then kill "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$node" -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
now() { date +%s.%N; }
# utime+stime in clock ticks of the whole process (the kernel sums all threads, live and exited).
cpu_ticks() { sed 's/^.*) //' "/proc/$spid/stat" | awk '{print $12 + $13}'; }
# busy ticks of the whole machine (user+nice+system+irq+softirq+steal, all cpus): server + client + anything else
machine_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
kib() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$spid/status"; }
# "name ticks" per thread name, summed over the live threads.
threads() {
  for f in /proc/"$spid"/task/*/stat; do
    # comm is between the first "(" and the last ")"; utime/stime are fields 14/15.
    s=$(cat "$f" 2>/dev/null) || continue
    comm=${s#*(}; comm=${comm%)*}; rest=${s##*) }
    echo "${comm// /_} $(echo "$rest" | awk '{print $12 + $13}')"
  done | awk '{t[$1] += $2} END {for (n in t) print n, t[n]}' | sort
}
reset_peak() { echo 5 >"/proc/$spid/clear_refs" 2>/dev/null && echo yes || echo no; }

phase_name=""; phase_t0=0; phase_c0=0; phase_threads=""; phase_reset=no
begin() {
  phase_name=$1
  phase_reset=$(reset_peak)
  phase_threads=$(threads)
  phase_c0=$(cpu_ticks)
  phase_m0=$(machine_ticks)
  phase_t0=$(now)
}
# end BYTES: prints one result block for the phase just measured.
end() {
  local t1 c1 m1 wall cpu hwm
  t1=$(now); c1=$(cpu_ticks); m1=$(machine_ticks); hwm=$(kib VmHWM)
  [ "$hwm" -gt "$max_hwm" ] && max_hwm=$hwm
  wall=$(awk -v a="$phase_t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
  cpu=$(awk -v a="$phase_c0" -v b="$c1" -v hz="$hz" 'BEGIN {printf "%.2f", (b - a) / hz}')
  awk -v n="$phase_name" -v w="$wall" -v c="$cpu" -v bytes="$1" -v hwm="$hwm" -v rss="$(kib VmRSS)" -v r="$phase_reset" \
      -v m="$(( m1 - phase_m0 ))" -v hz="$hz" 'BEGIN {
    mib = bytes / 1048576
    printf "%-16s %6.2f s %7.1f MB/s  server cpu %5.2f s = %4.2f ms/MiB  machine busy %5.2f s  peak RSS %5.1f MiB (reset: %s), after %5.1f MiB\n",
      n, w, bytes / 1e6 / w, c, c * 1000 / mib, m / hz, hwm / 1024, r, rss / 1024
  }'
  # per-thread split (threads alive at both samples; exited threads only show in the total)
  join -a 2 -e 0 -o 0,1.2,2.2 <(echo "$phase_threads") <(threads) | awk -v hz="$hz" -v mib="$(($1 / 1048576))" '
    { d = ($3 - $2) / hz; if (d > 0) printf "%s%s %.2f s (%.2f ms/MiB)", (n++ ? ", " : "    threads: "), $1, d, d * 1000 / mib }
    END { if (n) print "" }'
  return 0
}
max_hwm=0

if [ "${WHARF_BENCH_FROM:-package}" = src ]; then
  wharf=("$node" "$tree/src/cli/main.ts")
else
  "$here/bench/build-package.sh" "$work/pkg" "$tree"
  export PATH="$here/node_modules/.bin:$PATH"
  wharf=("$work/pkg/bin/wharf.js")
fi
port=$(free_port)
# Wharf's registry needs a project and a token: create bench/big offline, then ask /jwt/auth.
export WHARF_ROOT_PASSWORD=bench-root-password
"${wharf[@]}" admin group create --path bench --data "$work/data" >/dev/null
"${wharf[@]}" admin project create --path bench/big --data "$work/data" >/dev/null
"${wharf[@]}" serve --listen "127.0.0.1:$port" --data "$work/data" --log-level "${WHARF_BENCH_LOG_LEVEL:-info}" >"$work/wharf.log" 2>&1 &
spid=$!
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/v2/" && break; sleep 0.1; done
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/" || true)
[ "$code" = 401 ] || { echo "wharf did not start (GET /v2/: $code):" >&2; cat "$work/wharf.log" >&2; exit 1; }
token=$(curl -sf -u "root:$WHARF_ROOT_PASSWORD" "http://127.0.0.1:$port/jwt/auth?service=container_registry&scope=repository:bench/big:pull,push" | "$node" -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).token))')
printf 'header = "Authorization: Bearer %s"\n' "$token" >"$work/auth.curl"
base="http://127.0.0.1:$port/v2/bench/big"

rev=${WHARF_TREE_REV:-$(git -C "$tree" describe --always --dirty 2>/dev/null || echo unknown)}
echo "# big-layer: ${size_mib} MiB layer, ${chunk_mib} MiB chunks, wharf ($tree, $rev) pid $spid on :$port, data $work/data"
echo "# $(nproc) cpus, $(uname -r), node $("$node" --version), curl $(curl --version | head -1 | cut -d' ' -f2), log level ${WHARF_BENCH_LOG_LEVEL:-info}"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# server at start: VmHWM $(( $(kib VmHWM) / 1024 )) MiB, VmRSS $(( $(kib VmRSS) / 1024 )) MiB"

echo "# generating 2 x $size_mib MiB of random data..." >&2
head -c "$size" /dev/urandom >"$work/layer"
head -c "$size" /dev/urandom >"$work/layer2"
digest="sha256:$(sha256sum "$work/layer" | cut -d' ' -f1)"
digest2="sha256:$(sha256sum "$work/layer2" | cut -d' ' -f1)"
sync  # the files' own writeback must not land in the push phases
echo "# monolithic blob $digest"
echo "# chunked blob    $digest2"

# 1. monolithic: POST ?digest= with the body (no trailing slash after uploads, or curl -T appends the file name)
begin push-monolithic
code=$(curl -K "$work/auth.curl" -s -o "$work/resp" -w '%{http_code}' -X POST -T "$work/layer" -H 'Content-Type: application/octet-stream' "$base/blobs/uploads?digest=$digest")
end "$size"
[ "$code" = 201 ] || { echo "monolithic push: HTTP $code: $(head -c 500 "$work/resp")" >&2; exit 1; }

# 2. chunked: POST, PATCH per chunk with Content-Range (each chunk read from the file by dd), PUT ?digest=
begin push-chunked
loc=$(curl -K "$work/auth.curl" -s -D - -o /dev/null -X POST "$base/blobs/uploads/" | tr -d '\r' | awk 'tolower($1) == "location:" {print $2}')
[ -n "$loc" ] || { echo "chunked push: no Location from POST" >&2; exit 1; }
off=0; i=0
while [ "$off" -lt "$size" ]; do
  len=$(( size - off < chunk ? size - off : chunk ))
  code=$(dd if="$work/layer2" bs=1M skip="$((i * chunk_mib))" count="$chunk_mib" status=none |
    curl -K "$work/auth.curl" -s -o "$work/resp" -w '%{http_code}' -X PATCH --data-binary @- -H 'Content-Type: application/octet-stream' \
      -H "Content-Range: $off-$((off + len - 1))" "http://127.0.0.1:$port$loc")
  [ "$code" = 202 ] || { echo "PATCH $i: HTTP $code: $(head -c 500 "$work/resp")" >&2; exit 1; }
  off=$((off + len)); i=$((i + 1))
done
sep='?'; case "$loc" in *\?*) sep='&';; esac
code=$(curl -K "$work/auth.curl" -s -o "$work/resp" -w '%{http_code}' -X PUT "http://127.0.0.1:$port$loc${sep}digest=$digest2")
end "$size"
[ "$code" = 201 ] || { echo "chunked push: PUT HTTP $code: $(head -c 500 "$work/resp")" >&2; exit 1; }

# 3. pulls: each blob verified, then one raw
for d in "$digest" "$digest2"; do
  begin pull-sha256sum
  got="sha256:$(curl -K "$work/auth.curl" -sf "$base/blobs/$d" | sha256sum | cut -d' ' -f1)"
  end "$size"
  [ "$got" = "$d" ] || { echo "pull: digest mismatch: got $got, want $d" >&2; exit 1; }
  echo "    pulled digest matches $d"
done

begin pull-devnull
n=$(curl -K "$work/auth.curl" -sf -o /dev/null -w '%{size_download}' "$base/blobs/$digest")
end "$size"
[ "$n" = "$size" ] || { echo "pull: got $n bytes, want $size" >&2; exit 1; }

echo "# server peak RSS over all phases: $(awk -v k="$max_hwm" 'BEGIN {printf "%.1f MiB = %.1f MB", k / 1024, k * 1024 / 1e6}') (max of the per-phase VmHWM); VmRSS now $(( $(kib VmRSS) / 1024 )) MiB"
errors=$(grep -c '"level":[5-6]0' "$work/wharf.log" || true)
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# server log: $(wc -l <"$work/wharf.log") lines, $errors at error level"
