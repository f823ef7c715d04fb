#!/bin/sh
# An all-in-one OpenStack Swift with its S3 API (s3api + tempauth), on loopback, in a temp dir:
# the S3-compatible store the S3 storage tests and the bench run against.
#
#   scripts/swift-s3.sh start DIR PROXY_PORT ACCOUNT_PORT CONTAINER_PORT OBJECT_PORT
#   scripts/swift-s3.sh stop DIR
#
# One replica, one device (a plain directory: mount_check off, so no loop device or xfs is
# needed; ext4 and tmpfs keep Swift's metadata in small user xattrs). The S3 credentials are
# tempauth's: access key `wharf:tester`, secret `testing` (region us-east-1, path-style URLs).
# `start` returns once every server answers; the servers' pids are kept in
# DIR/pids for `stop`, their logs in DIR/*.log.
set -eu

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR [PROXY ACCOUNT CONTAINER OBJECT ports]" >&2; exit 2; }

if [ "$cmd" = stop ]; then
  [ -f "$dir/pids" ] || exit 0
  # Only the processes this script started: each server leads its own process group (its workers are
  # in it), so the recorded pids name the groups.
  for pid in $(cat "$dir/pids"); do kill -TERM -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; done
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    alive=""
    for pid in $(cat "$dir/pids"); do kill -0 -- "-$pid" 2>/dev/null && alive="$alive $pid"; done
    [ -z "$alive" ] && break
    sleep 0.2
  done
  for pid in $(cat "$dir/pids"); do kill -KILL -- "-$pid" 2>/dev/null || true; done
  rm -f "$dir/pids"
  exit 0
fi
[ "$cmd" = start ] || { echo "$0: unknown command $cmd" >&2; exit 2; }
[ $# -eq 6 ] || { echo "usage: $0 start DIR PROXY_PORT ACCOUNT_PORT CONTAINER_PORT OBJECT_PORT" >&2; exit 2; }
proxy=$3 account=$4 container=$5 object=$6
for b in swift-proxy-server swift-account-server swift-container-server swift-object-server swift-ring-builder; do
  command -v $b >/dev/null 2>&1 || { echo "$0: $b is missing (Debian: swift-proxy swift-account swift-container swift-object)" >&2; exit 1; }
done

mkdir -p "$dir/srv/d1" "$dir/run"
cat >"$dir/swift.conf" <<EOF
[swift-hash]
swift_hash_path_suffix = wharf-test
swift_hash_path_prefix = wharf-test
[storage-policy:0]
name = Policy-0
default = yes
[swift-constraints]
EOF

common() {
  cat <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $1
swift_dir = $dir
devices = $dir/srv
mount_check = false
workers = $2
log_name = $3
log_facility = LOG_LOCAL0
log_level = WARNING
log_address = /dev/null
user = $(id -un)
EOF
}

{ common "$account" 0 account; cat <<EOF
[pipeline:main]
pipeline = account-server
[app:account-server]
use = egg:swift#account
EOF
} >"$dir/account-server.conf"

{ common "$container" 0 container; cat <<EOF
[pipeline:main]
pipeline = container-server
[app:container-server]
use = egg:swift#container
EOF
} >"$dir/container-server.conf"

# Two object workers: uploads of parts run concurrently.
{ common "$object" 2 object; cat <<EOF
[pipeline:main]
pipeline = object-server
[app:object-server]
use = egg:swift#object
EOF
} >"$dir/object-server.conf"

{ common "$proxy" 2 proxy; cat <<EOF
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk s3api tempauth copy slo dlo proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:cache]
use = egg:swift#memcache
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:bulk]
use = egg:swift#bulk
[filter:s3api]
use = egg:swift#s3api
location = us-east-1
s3_acl = false
check_bucket_owner = false
[filter:tempauth]
use = egg:swift#tempauth
user_wharf_tester = testing .admin
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
EOF
} >"$dir/proxy-server.conf"

# The three rings in one Python process (swift-ring-builder would start Python nine times).
cd "$dir"
/usr/bin/python3 - "$account" "$container" "$object" <<'PY'
import sys
from swift.common.ring import RingBuilder
for name, port in zip(('account', 'container', 'object'), sys.argv[1:]):
    b = RingBuilder(6, 1, 0)
    b.add_dev({'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'port': int(port), 'device': 'd1', 'weight': 100})
    b.rebalance()
    b.get_ring().save(name + '.ring.gz')
PY

: >"$dir/pids"
for server in account container object proxy; do
  "swift-$server-server" "$dir/$server-server.conf" >"$dir/$server.log" 2>&1 &
  echo $! >>"$dir/pids"
done

# Ready when every server answers HTTP (workers fork after binding) and the proxy's healthcheck is OK.
i=0
while :; do
  up=1
  for port in $account $container $object; do
    curl -s -o /dev/null "http://127.0.0.1:$port/" || up=0
  done
  if [ $up = 1 ] && [ "$(curl -s "http://127.0.0.1:$proxy/healthcheck")" = OK ]; then
    exit 0
  fi
  i=$((i + 1))
  if [ $i -gt 300 ]; then
    echo "$0: swift did not start; logs in $dir" >&2
    tail -n 20 "$dir"/*.log >&2
    exit 1
  fi
  sleep 0.1
done
