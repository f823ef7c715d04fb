#!/bin/sh
# Private Docker engine for the end-to-end tests.
#
#   scripts/docker-engine.sh start DIR   start dockerd with its state in DIR, print DOCKER_HOST=...
#   scripts/docker-engine.sh stop DIR    stop it (by pidfile) and wait for it to exit
#   scripts/docker-engine.sh env DIR     print DOCKER_HOST=... for an engine in DIR
#
# Keep DIR short (e.g. /tmp/wharf-engine-XXXX): the socket path must fit the
# ~100 byte unix socket path limit. The flags below are the only combination
# that works in this sandbox (no iptables, no bridge, cgroupfs, vfs storage).
# Registries on 127.0.0.1/localhost are insecure-allowed by default, so plain
# HTTP to 127.0.0.1:PORT works without daemon configuration.
# DOCKER_ENGINE_REGISTRY_MIRROR=http://HOST:PORT makes the engine pull Docker Hub
# images through that mirror (dockerd --registry-mirror).
set -eu

usage() {
  echo "usage: $0 start|stop|env DIR" >&2
  exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
dir=$2
case "$dir" in
  /*) ;;
  *) dir="$(pwd)/$dir" ;;
esac

sock="$dir/docker.sock"
pidfile="$dir/docker.pid"
log="$dir/dockerd.log"
host="unix://$sock"

# Prefer the client that ships with the engine if the PATH one is missing.
DOCKER=$(command -v docker 2>/dev/null || echo /usr/bin/docker)
DOCKERD=$(command -v dockerd 2>/dev/null || echo /usr/sbin/dockerd)

is_running() {
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

case "$cmd" in
  start)
    if [ ${#sock} -gt 100 ]; then
      echo "docker-engine: socket path too long (${#sock} > 100): $sock" >&2
      exit 1
    fi
    if [ ! -x "$DOCKERD" ]; then
      echo "docker-engine: dockerd not found (install docker.io; see scripts/ensure-system-deps.sh)" >&2
      exit 1
    fi
    mkdir -p "$dir/data" "$dir/exec"
    if is_running && "$DOCKER" -H "$host" info >/dev/null 2>&1; then
      echo "DOCKER_HOST=$host"
      exit 0
    fi
    rm -f "$sock" "$pidfile"
    # setsid: the engine must not share the caller's process group, so that a
    # test runner killing its group does not orphan it half-way; `stop` kills it.
    setsid "$DOCKERD" \
      --storage-driver=vfs \
      --iptables=false \
      --ip6tables=false \
      --bridge=none \
      --exec-opt native.cgroupdriver=cgroupfs \
      --data-root "$dir/data" \
      --exec-root "$dir/exec" \
      --pidfile "$pidfile" \
      ${DOCKER_ENGINE_REGISTRY_MIRROR:+--registry-mirror "$DOCKER_ENGINE_REGISTRY_MIRROR"} \
      -H "$host" \
      </dev/null >"$log" 2>&1 &
    bgpid=$!
    deadline=$(( $(date +%s) + ${DOCKER_ENGINE_TIMEOUT:-60} ))
    while :; do
      if "$DOCKER" -H "$host" info >/dev/null 2>&1; then
        break
      fi
      if ! kill -0 "$bgpid" 2>/dev/null; then
        echo "docker-engine: dockerd exited during startup; log tail ($log):" >&2
        tail -n 40 "$log" >&2 || true
        exit 1
      fi
      if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "docker-engine: dockerd did not answer within ${DOCKER_ENGINE_TIMEOUT:-60}s; log tail ($log):" >&2
        tail -n 40 "$log" >&2 || true
        kill "$bgpid" 2>/dev/null || true
        exit 1
      fi
      sleep 0.2
    done
    echo "DOCKER_HOST=$host"
    ;;
  stop)
    if [ -f "$pidfile" ]; then
      pid=$(cat "$pidfile" 2>/dev/null || true)
      if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        i=0
        while kill -0 "$pid" 2>/dev/null; do
          i=$((i + 1))
          if [ "$i" -ge 150 ]; then
            echo "docker-engine: dockerd $pid still running after 30s, sending KILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            break
          fi
          sleep 0.2
        done
      fi
      rm -f "$pidfile"
    fi
    rm -f "$sock"
    # dockerd leaves its host-network namespace file (exec/netns/default, an nsfs mount) behind
    # once a --network host container ran; unmount whatever is still mounted below DIR, deepest
    # first, so DIR can be removed.
    awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    ;;
  env)
    echo "DOCKER_HOST=$host"
    ;;
  *)
    usage
    ;;
esac
