#!/usr/bin/env bash
# Side-by-side on S3: Wharf with `storage: s3` against Debian's docker-registry (distribution 2.8)
# with its s3 driver, both on the same S3-compatible store (Swift's s3api from scripts/swift-s3.sh,
# one bucket, a prefix each), driven by ../shared/bench/regbench.mjs --compare. Server CPU is the
# registries' own (regbench reads /proc/<pid>); Swift's CPU, the same store for both, is not counted.
#   bench/s3-compare.sh [regbench args...]   default: --scenario push-monolithic,push-chunked,pull-blob --size 8m --count 40 --rounds 3
# Wharf runs from its TypeScript sources with request logging at info; distribution with access
# logs off. Temp dirs and the servers started here are removed afterwards.
# Wharf starts with bin/wharf.js's node flags, as shipped (WHARF_BENCH_LAUNCH_FLAGS replaces them);
# WHARF_BENCH_NODE_ARGS adds node options; WHARF_BENCH_PROF_DIR=<dir> adds --cpu-prof into that
# directory (written when the script stops Wharf); WHARF_BENCH_KEEP_LOG=<file> keeps Wharf's log
# (stdout and stderr, so also a --trace-gc). Wharf's CPU per thread (/proc/PID/task/*/stat:
# main, libuv, V8 GC workers) is printed at the end.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
regbench=${REGBENCH:-$here/../shared/bench/regbench.mjs}
node=$here/node_modules/.bin/node
work=$(mktemp -d /tmp/wharf-s3-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -z "${WHARF_BENCH_PROF_DIR:-}" ] || ls "$WHARF_BENCH_PROF_DIR" >&2
  [ -z "${WHARF_BENCH_KEEP_LOG:-}" ] || cp "$work/wharf.log" "$WHARF_BENCH_KEEP_LOG"
  sh "$here/scripts/swift-s3.sh" stop "$work/swift" || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { "$node" -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
wait_http() { for _ in $(seq 1 300); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; tail -n 20 "$work"/*.log >&2; return 1; }

sport=$(free_port); a=$(free_port); c=$(free_port); o=$(free_port)
mkdir -p "$work/swift"
sh "$here/scripts/swift-s3.sh" start "$work/swift" "$sport" "$a" "$c" "$o"
endpoint=http://127.0.0.1:$sport
bucket=bench
(cd "$here" && "$node" -e '
const { S3Client, CreateBucketCommand } = require("@aws-sdk/client-s3")
const s3 = new S3Client({ endpoint: process.argv[1], region: "us-east-1", forcePathStyle: true, credentials: { accessKeyId: "wharf:tester", secretAccessKey: "testing" } })
;(async () => { for (let i = 0; ; i++) { try { await s3.send(new CreateBucketCommand({ Bucket: "bench" })); return } catch (e) { if (e.name === "BucketAlreadyOwnedByYou") return; if (i > 50) throw e; await new Promise((r) => setTimeout(r, 200)) } } })()
' "$endpoint")

wport=$(free_port); dport=$(free_port)
export WHARF_ROOT_PASSWORD=bench-root-password
export WHARF_STORAGE=s3 WHARF_S3_ENDPOINT=$endpoint WHARF_S3_BUCKET=$bucket WHARF_S3_PREFIX=wharf/ WHARF_S3_FORCE_PATH_STYLE=true
export WHARF_S3_ACCESS_KEY_ID=wharf:tester WHARF_S3_SECRET_ACCESS_KEY=testing
wharf=("$node" "$here/src/cli/main.ts")
# Wharf's launch flags as shipped (bin/wharf.js's shebang: V8 heap sizing); WHARF_BENCH_LAUNCH_FLAGS='' runs without.
read -r -a node_args <<<"${WHARF_BENCH_LAUNCH_FLAGS-$(sed -n '1s/^#!.* node //p' "$here/bin/wharf.js")} ${WHARF_BENCH_NODE_ARGS:-}"
[ -z "${WHARF_BENCH_PROF_DIR:-}" ] || node_args+=(--cpu-prof "--cpu-prof-dir=$WHARF_BENCH_PROF_DIR")
"${wharf[@]}" admin group create --path bench --data "$work/wharf" >/dev/null
"${wharf[@]}" admin project create --path bench/r --data "$work/wharf" >/dev/null
"$node" "${node_args[@]}" "$here/src/cli/main.ts" serve --listen "127.0.0.1:$wport" --data "$work/wharf" --log-level "${WHARF_BENCH_LOG_LEVEL:-info}" >"$work/wharf.log" 2>&1 &
wpid=$!; pids+=("$wpid")
cat >"$work/dist.yml" <<YML
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage:
  s3: { accesskey: "wharf:tester", secretkey: testing, region: us-east-1, regionendpoint: "$endpoint", bucket: $bucket, rootdirectory: /dist, secure: false, v4auth: true }
  delete: { enabled: true }
  redirect: { disable: true }
http: { addr: 127.0.0.1:$dport }
YML
# An AWS_CA_BUNDLE in the environment makes the SDK of distribution panic with its own transport (plain http here anyway).
env -u AWS_CA_BUNDLE docker-registry serve "$work/dist.yml" >"$work/dist.log" 2>&1 &
dpid=$!; pids+=("$dpid")
wait_http "http://127.0.0.1:$wport/v2/"; wait_http "http://127.0.0.1:$dport/v2/"
echo "swift s3api on :$sport   wharf pid $wpid on :$wport (storage s3)   distribution $(docker-registry --version 2>/dev/null | head -1) pid $dpid on :$dport (s3 driver)" >&2
if [ $# -eq 0 ]; then set -- --scenario push-monolithic,push-chunked,pull-blob --size 8m --count 40 --rounds 3; fi
"$node" "$regbench" --url "http://127.0.0.1:$wport" --pid "$wpid" --user root --password "$WHARF_ROOT_PASSWORD" \
  --compare "http://127.0.0.1:$dport" --pid2 "$dpid" "$@"
threads() { for f in /proc/"$wpid"/task/*/stat; do sed -E 's/^[0-9]+ \((.*)\) . (([^ ]+ ){10})([0-9]+) ([0-9]+).*/\1 \4 \5/' "$f"; done |
  awk -v hz="$(getconf CLK_TCK)" '{ n=$1; for (i=2;i<NF-1;i++) n=n"_"$i; sub(/[0-9]+$/,"",n); c[n]+=($(NF-1)+$NF)/hz } END { for (n in c) printf "%s %.2fs  ", n, c[n]; print "" }'; }
echo "wharf CPU by thread over the whole run (incl. fixtures): $(threads)" >&2
echo "swift proxy CPU (both registries' traffic): $(ps -o cputime= -p "$(head -4 "$work/swift/pids" | tail -1)" 2>/dev/null || echo n/a)" >&2
