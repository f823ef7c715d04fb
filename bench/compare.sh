#!/usr/bin/env bash
# Side-by-side benchmark: Wharf (A) against CNCF distribution, Debian's docker-registry (B),
# both on loopback in the same run, driven by ../shared/bench/regbench.mjs --compare.
#   bench/compare.sh [regbench args...]      e.g. bench/compare.sh --scenario pull-manifest --rounds 5
# Wharf runs with its defaults (token auth on, request logging at info, fsync on commit) and as it
# ships: the package's compiled JavaScript (what "npm pack" builds) started through bin/wharf.js, so
# the launcher's node flags apply; WHARF_BENCH_FROM=src runs the TypeScript sources instead.
# distribution runs with its Debian defaults and no auth. regbench's repositories live under
# bench/r/<scenario>, so Wharf gets a project bench/r first. Temp data dirs are removed afterwards.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
regbench=${REGBENCH:-$here/../shared/bench/regbench.mjs}
node=$here/node_modules/.bin/node
work=$(mktemp -d /tmp/wharf-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { "$node" -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
wait_http() { for _ in $(seq 1 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }

if [ "${WHARF_BENCH_FROM:-package}" = src ]; then
  wharf=("$node" "$here/src/cli/main.ts")
else
  "$here/bench/build-package.sh" "$work/pkg"
  export PATH="$here/node_modules/.bin:$PATH"
  wharf=("$work/pkg/bin/wharf.js")
fi
wport=$(free_port); dport=$(free_port)
export WHARF_ROOT_PASSWORD=bench-root-password
"${wharf[@]}" admin group create --path bench --data "$work/wharf" >/dev/null
"${wharf[@]}" admin project create --path bench/r --data "$work/wharf" >/dev/null
"${wharf[@]}" serve --listen "127.0.0.1:$wport" --data "$work/wharf" --log-level "${WHARF_BENCH_LOG_LEVEL:-info}" >"$work/wharf.log" 2>&1 &
wpid=$!; pids+=("$wpid")
mkdir -p "$work/dist"
cat >"$work/dist.yml" <<YML
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage: { filesystem: { rootdirectory: $work/dist }, delete: { enabled: true } }
http: { addr: 127.0.0.1:$dport }
YML
docker-registry serve "$work/dist.yml" >"$work/dist.log" 2>&1 &
dpid=$!; pids+=("$dpid")
wait_http "http://127.0.0.1:$wport/v2/"; wait_http "http://127.0.0.1:$dport/v2/"
echo "wharf: $(tr '\0' ' ' </proc/"$wpid"/cmdline)" >&2
echo "wharf pid $wpid on :$wport   distribution $(docker-registry --version 2>/dev/null | head -1) pid $dpid on :$dport" >&2
"$node" "$regbench" --url "http://127.0.0.1:$wport" --pid "$wpid" --user root --password "$WHARF_ROOT_PASSWORD" \
  --compare "http://127.0.0.1:$dport" --pid2 "$dpid" "$@"
