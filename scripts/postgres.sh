#!/bin/sh
# A private PostgreSQL 15 cluster for tests and benchmarks, from Debian's packages, reachable only
# through a unix socket in its own directory (no TCP port to collide with anything else).
#
#   scripts/postgres.sh start [DIR]   initialize DIR if new, start the server, print its URL
#   scripts/postgres.sh url [DIR]     print the URL of the cluster in DIR
#   scripts/postgres.sh stop [DIR]    stop the server and remove DIR
#
# DIR defaults to $WHARF_PG_DIR, else a directory under $TMPDIR named after this checkout, so
# two checkouts on one machine get two clusters. The superuser is `wharf`, trusted on the socket.
# PostgreSQL refuses to run as root: as root, the cluster runs as the `postgres` user (Debian's
# package creates it), else as the calling user.
set -eu

BIN=/usr/lib/postgresql/15/bin
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-}
dir=${2:-${WHARF_PG_DIR:-${TMPDIR:-/tmp}/wharf-pg-$(printf %s "$ROOT" | cksum | cut -d' ' -f1)}}

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

url() {
  # pg's URL form for a unix socket: the socket's directory in the host parameter.
  echo "postgres://wharf@localhost/postgres?host=$dir"
}

case "$cmd" in
  start)
    if [ ! -x "$BIN/pg_ctl" ]; then
      echo "postgres.sh: $BIN/pg_ctl not found (Debian package postgresql-15; scripts/ensure-system-deps.sh installs it)" >&2
      exit 1
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      mkdir -p "$dir"
      if [ "$(id -u)" = 0 ]; then
        chown postgres: "$dir"
        if ! runuser -u postgres -- test -x "$dir"; then
          echo "postgres.sh: the postgres user cannot reach $dir (a parent directory is private); use a directory under /tmp" >&2
          exit 1
        fi
      fi
      # The machine may have no other libc locale; test databases pick ICU's en-US themselves
      # (test/helpers/database.ts), so order-dependent queries are tested against a non-byte order.
      as_owner "$BIN/initdb" -D "$dir/data" -U wharf --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        exit 1
      }
    fi
    if ! as_owner "$BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      # fsync off: the cluster is thrown away; the tests measure Wharf, not the disk.
      as_owner "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
        -o "-c listen_addresses='' -c unix_socket_directories='$dir' -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        >/dev/null || {
        cat "$dir/server.log" >&2
        exit 1
      }
    fi
    url
    ;;
  url) url ;;
  stop)
    if [ -f "$dir/data/PG_VERSION" ]; then as_owner "$BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true; fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start|url|stop [DIR]" >&2
    exit 2
    ;;
esac
