#!/bin/sh
# A Wharf cluster on loopback: PostgreSQL 15 (scripts/postgres.sh), Swift's S3 API
# (scripts/swift-s3.sh), two `wharf serve` nodes with identical settings, and nginx balancing
# round-robin in front, each on a free port, everything in one directory. For the cluster tests
# (test/helpers/cluster.ts), the two-node benchmark (bench/cluster-bench.sh) and trying it by hand.
#
#   scripts/cluster.sh start DIR        start everything; prints KEY=VALUE lines (also in DIR/cluster.env)
#   scripts/cluster.sh stop DIR         stop everything this script started in DIR and remove DIR
#   scripts/cluster.sh kill DIR a|b     kill -9 one node (nginx marks it down at its next failed request)
#   scripts/cluster.sh start-node DIR a|b   start one node again (after `kill`)
#
# Printed: CLUSTER_URL (nginx, both nodes; the nodes' public URL), CLUSTER_SINGLE_URL (nginx, node a
# only: one node against two through the same proxy), NODE_A_URL, NODE_B_URL, NODE_A_PID, NODE_B_PID,
# NODE_A_LOG, NODE_B_LOG, ROOT_PASSWORD, METRICS_TOKEN, DATABASE_URL, S3_ENDPOINT, S3_BUCKET, DATA_DIR,
# GIT_REPOS_DIR, SEALING_KEY_FILE.
# CLUSTER_LOG_LEVEL sets the nodes' log level (default info); CLUSTER_START=serial starts node b
# only once node a is ready (default: both at once). WHARF_* variables of the caller are not
# passed on: both nodes get exactly the settings below.
#
# What the nodes share: the database, the bucket, the git repositories (GIT_REPOS_DIR, through
# `git.repositoriesDir`, as a shared volume would be) and the sealing key (SEALING_KEY_FILE, through
# `secrets.sealingKeyFile`, as a Kubernetes Secret would be). Each node has its own data directory
# (DATA_DIR/node-a, DATA_DIR/node-b), which with PostgreSQL and S3 holds nothing the other needs.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
NODE="$ROOT/node_modules/.bin/node"
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|kill|start-node DIR [a|b]" >&2; exit 2; }

# The caller's WHARF_* settings never reach the nodes.
for v in $(env | sed -n 's/^\(WHARF_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$v"; done

# Starts node $1 (a or b) in its own session from the settings in DIR/cluster.env; records its pid.
start_node() {
  # shellcheck disable=SC1091
  . "$dir/cluster.env"
  name=$1
  case $name in
    a) port=$NODE_A_PORT ;;
    b) port=$NODE_B_PORT ;;
    *) echo "$0: no node $name (a or b)" >&2; exit 2 ;;
  esac
  log="$dir/node-$name.log"
  echo "=== $(date -u +%FT%TZ) start" >>"$log"
  # setsid: the node leads its own process group, so `stop` ends it and any git it runs.
  WHARF_DATABASE_URL="$DATABASE_URL" \
  WHARF_STORAGE=s3 \
  WHARF_S3_ENDPOINT="$S3_ENDPOINT" \
  WHARF_S3_REGION=us-east-1 \
  WHARF_S3_BUCKET="$S3_BUCKET" \
  WHARF_S3_PREFIX=cluster/ \
  WHARF_S3_ACCESS_KEY_ID=wharf:tester \
  WHARF_S3_SECRET_ACCESS_KEY=testing \
  WHARF_S3_FORCE_PATH_STYLE=true \
  WHARF_ROOT_PASSWORD="$ROOT_PASSWORD" \
  WHARF_METRICS_TOKEN="$METRICS_TOKEN" \
  WHARF_LIMITS_MAX_CONNECTIONS_PER_ADDRESS=0 \
  WHARF_LOG_LEVEL="${CLUSTER_LOG_LEVEL:-info}" \
  WHARF_GIT_REPOSITORIES_DIR="$GIT_REPOS_DIR" \
  WHARF_SEALING_KEY_FILE="$SEALING_KEY_FILE" \
    setsid "$NODE" "$ROOT/src/cli/main.ts" serve \
      --listen "127.0.0.1:$port" --public-url "$CLUSTER_URL" --data "$DATA_DIR/node-$name" \
      </dev/null >>"$log" 2>&1 &
  echo $! >"$dir/node-$name.pid"
}

# Waits until node $1 answers /-/readiness with 200.
wait_ready() {
  # shellcheck disable=SC1091
  . "$dir/cluster.env"
  name=$1
  case $name in a) url=$NODE_A_URL ;; *) url=$NODE_B_URL ;; esac
  pid=$(cat "$dir/node-$name.pid")
  i=0
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/-/readiness")" = 200 ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$0: node $name exited during start-up; its log:" >&2
      tail -n 40 "$dir/node-$name.log" >&2
      return 1
    fi
    i=$((i + 1))
    if [ $i -gt 600 ]; then
      echo "$0: node $name not ready after 60 s; its log:" >&2
      tail -n 40 "$dir/node-$name.log" >&2
      return 1
    fi
    sleep 0.1
  done
}

stop_pidfile() {
  # A process group this script started: TERM, then KILL after 10 s.
  [ -f "$1" ] || return 0
  pid=$(cat "$1")
  kill -TERM "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  i=0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
  done
  kill -KILL "-$pid" 2>/dev/null || true
  rm -f "$1"
}

case "$cmd" in
  start) ;;
  stop)
    [ -d "$dir" ] || exit 0
    stop_pidfile "$dir/nginx.pid"
    stop_pidfile "$dir/node-a.pid"
    stop_pidfile "$dir/node-b.pid"
    sh "$ROOT/scripts/swift-s3.sh" stop "$dir/swift" || true
    sh "$ROOT/scripts/postgres.sh" stop "$dir/pg" || true
    rm -rf "$dir"
    exit 0
    ;;
  kill)
    name=${3:-}
    [ -f "$dir/node-$name.pid" ] || { echo "$0: no running node '$name' in $dir" >&2; exit 2; }
    kill -KILL "-$(cat "$dir/node-$name.pid")"
    rm -f "$dir/node-$name.pid"
    exit 0
    ;;
  start-node)
    name=${3:-}
    start_node "$name"
    wait_ready "$name"
    echo "NODE_$(echo "$name" | tr ab AB)_PID=$(cat "$dir/node-$name.pid")"
    exit 0
    ;;
  *)
    echo "$0: unknown command $cmd" >&2
    exit 2
    ;;
esac

for b in nginx curl python3; do
  command -v $b >/dev/null 2>&1 || [ -x /usr/sbin/$b ] || { echo "$0: $b is missing (scripts/ensure-system-deps.sh installs it)" >&2; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# PostgreSQL runs as the postgres user when this runs as root: it must be able to reach DIR/pg.
chmod 711 "$dir"
# Any failure from here on leaves nothing running.
trap 'status=$?; [ $status = 0 ] || sh "$0" stop "$dir"; exit $status' EXIT
trap 'exit 130' INT TERM

# Eight distinct free loopback ports: Swift's four, two nodes, two nginx listeners.
set -- $(python3 -c '
import socket
socks = [socket.socket() for _ in range(8)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
')
swift_proxy=$1 swift_account=$2 swift_container=$3 swift_object=$4
node_a=$5 node_b=$6 lb=$7 lb_single=$8

# PostgreSQL and Swift start side by side (Swift takes 15-25 s).
sh "$ROOT/scripts/postgres.sh" start "$dir/pg" >"$dir/pg.url" 2>"$dir/pg.err" &
pg_pid=$!
sh "$ROOT/scripts/swift-s3.sh" start "$dir/swift" "$swift_proxy" "$swift_account" "$swift_container" "$swift_object" \
  >"$dir/swift.out" 2>&1 &
swift_pid=$!
wait $pg_pid || { cat "$dir/pg.err" >&2; exit 1; }
wait $swift_pid || { cat "$dir/swift.out" >&2; exit 1; }
database_url=$(cat "$dir/pg.url")

# The bucket, with the AWS SDK Wharf itself uses (curl's SigV4 cannot take tempauth's access key,
# which holds a colon). The account may not exist everywhere yet on the very first requests.
s3_bucket=wharf-cluster
(cd "$ROOT" && "$NODE" --input-type=module -e "
import { S3Client, CreateBucketCommand } from '@aws-sdk/client-s3'
const s3 = new S3Client({ endpoint: 'http://127.0.0.1:$swift_proxy', region: 'us-east-1', forcePathStyle: true,
  credentials: { accessKeyId: 'wharf:tester', secretAccessKey: 'testing' } })
for (let i = 0; ; i++) {
  try { await s3.send(new CreateBucketCommand({ Bucket: '$s3_bucket' })); break }
  catch (e) { if (e.name === 'BucketAlreadyOwnedByYou') break; if (i > 50) throw e; await new Promise((r) => setTimeout(r, 200)) }
}
s3.destroy()
") || { echo "$0: cannot create the bucket" >&2; exit 1; }

root_password=$(python3 -c 'import secrets; print("root-" + secrets.token_urlsafe(12))')
metrics_token=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
mkdir -p "$dir/data/node-a" "$dir/data/node-b" "$dir/data/git"
(
  umask 077
  head -c 32 /dev/urandom | base64 >"$dir/sealing.key"
  cat >"$dir/cluster.env" <<EOF
CLUSTER_URL=http://127.0.0.1:$lb
CLUSTER_SINGLE_URL=http://127.0.0.1:$lb_single
NODE_A_URL=http://127.0.0.1:$node_a
NODE_B_URL=http://127.0.0.1:$node_b
NODE_A_PORT=$node_a
NODE_B_PORT=$node_b
NODE_A_LOG=$dir/node-a.log
NODE_B_LOG=$dir/node-b.log
ROOT_PASSWORD=$root_password
METRICS_TOKEN=$metrics_token
DATABASE_URL=$database_url
S3_ENDPOINT=http://127.0.0.1:$swift_proxy
S3_BUCKET=$s3_bucket
DATA_DIR=$dir/data
GIT_REPOS_DIR=$dir/data/git
SEALING_KEY_FILE=$dir/sealing.key
EOF
)

# Both nodes start at once, on an empty database, as a Deployment's replicas do (two migrations
# and two first-start set-ups racing); CLUSTER_START=serial starts b once a is ready.
start_node a
if [ "${CLUSTER_START:-parallel}" = serial ]; then wait_ready a; fi
start_node b
wait_ready a
wait_ready b

mkdir -p "$dir/nginx/tmp"
# As root, nginx's workers would switch to `nobody`, who cannot write in DIR: they stay root.
user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"
cat >"$dir/nginx/nginx.conf" <<EOF
$user_line
worker_processes 1;
error_log $dir/nginx/error.log warn;
pid $dir/nginx/nginx.pid;
events { worker_connections 1024; }
http {
  client_body_temp_path $dir/nginx/tmp/body;
  proxy_temp_path $dir/nginx/tmp/proxy;
  fastcgi_temp_path $dir/nginx/tmp/fastcgi;
  uwsgi_temp_path $dir/nginx/tmp/uwsgi;
  scgi_temp_path $dir/nginx/tmp/scgi;
  log_format upstream '\$remote_addr "\$request" \$status \$body_bytes_sent upstream=\$upstream_addr upstream_status=\$upstream_status t=\$request_time';
  access_log $dir/nginx/access.log upstream;

  # A node that fails a request (connection refused or reset) is taken out for 10 s; requests
  # without a body that fail that way are retried on the other node (nginx's default
  # proxy_next_upstream: error and timeout, idempotent methods only).
  upstream wharf {
    server 127.0.0.1:$node_a max_fails=1 fail_timeout=10s;
    server 127.0.0.1:$node_b max_fails=1 fail_timeout=10s;
    keepalive 64;
  }
  upstream wharf_single {
    server 127.0.0.1:$node_a;
    keepalive 64;
  }

  # Blobs and git packs stream through in both directions, never buffered to disk; runners'
  # long polls (30 s) and slow uploads stay open.
  client_max_body_size 0;
  proxy_request_buffering off;
  proxy_buffering off;
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_set_header Host \$http_host;
  proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
  proxy_set_header X-Forwarded-Proto \$scheme;
  proxy_read_timeout 120s;
  proxy_send_timeout 120s;

  server {
    listen 127.0.0.1:$lb;
    location / { proxy_pass http://wharf; }
  }
  server {
    listen 127.0.0.1:$lb_single;
    location / { proxy_pass http://wharf_single; }
  }
}
EOF
# In the foreground of its own session, so its pid is the group to stop.
setsid "$NGINX" -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -g 'daemon off;' </dev/null >"$dir/nginx/out.log" 2>&1 &
echo $! >"$dir/nginx.pid"
i=0
until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$lb/-/readiness")" = 200 ]; do
  i=$((i + 1))
  [ $i -lt 100 ] || { echo "$0: nginx did not start:" >&2; cat "$dir/nginx/out.log" "$dir/nginx/error.log" >&2 2>/dev/null; exit 1; }
  sleep 0.1
done

cat "$dir/cluster.env"
echo "NODE_A_PID=$(cat "$dir/node-a.pid")"
echo "NODE_B_PID=$(cat "$dir/node-b.pid")"
echo "DIR=$dir"
