#!/bin/sh
# Ensure the system tools used by the end-to-end tests are installed.
# Fast no-op when everything is present. As root with apt-get, installs the
# missing Debian packages; otherwise reports what is missing and fails.
set -u

missing_cmds=""
missing_pkgs=""

need() {
  # need COMMAND DEBIAN-PACKAGE
  if ! command -v "$1" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$1" ] && [ ! -x "/sbin/$1" ]; then
    missing_cmds="$missing_cmds $1"
    case " $missing_pkgs " in
      *" $2 "*) ;;
      *) missing_pkgs="$missing_pkgs $2" ;;
    esac
  fi
}

need dockerd docker.io
need docker docker.io
need podman podman
need skopeo skopeo
need buildah buildah
need docker-registry docker-registry
need ctr containerd
need busybox busybox-static
need newuidmap uidmap
need git git
need chromium chromium
# promtool checks the /-/metrics exposition (test/e2e/ops.test.ts).
need promtool prometheus
# Stock GitLab clients for the compatibility suite (test/compat): curl, and python-gitlab, which
# Debian ships as a library only (its CLI runs as `python3 -m gitlab`).
need curl curl
# OpenLDAP for the LDAP sign-in tests (test/e2e/sso-ldap.test.ts starts its own slapd on loopback).
need slapd slapd
need ldapadd ldap-utils
if ! /usr/bin/python3 -c 'import gitlab' >/dev/null 2>&1; then
  missing_cmds="$missing_cmds python3-gitlab"
  missing_pkgs="$missing_pkgs python3-gitlab"
fi
# PostgreSQL 15 for the database tests' second pass (scripts/test-postgres.sh); its programs are
# not on PATH, so look where Debian puts them.
if [ ! -x /usr/lib/postgresql/15/bin/pg_ctl ]; then
  missing_cmds="$missing_cmds pg_ctl(15)"
  missing_pkgs="$missing_pkgs postgresql-15"
fi
# nginx balances the two nodes of the cluster tests and benchmark (scripts/cluster.sh).
need nginx nginx
# debootstrap makes the container image's offline base (scripts/make-node-base-image.sh).
need debootstrap debootstrap
# OpenStack Swift with s3api: the S3-compatible store of the S3 storage tests (scripts/swift-s3.sh).
need swift-proxy-server swift-proxy
need swift-account-server swift-account
need swift-container-server swift-container
need swift-object-server swift-object
# systemd-analyze verifies packaging/wharf.service (test/packaging.test.ts).
need systemd-analyze systemd

# busybox must be the static build: it is copied into test images that run
# without any shared libraries.
if [ -z "$missing_pkgs" ] && command -v dpkg-query >/dev/null 2>&1; then
  if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed'; then
    missing_cmds="$missing_cmds busybox(static)"
    missing_pkgs="$missing_pkgs busybox-static"
  fi
fi

[ -z "$missing_pkgs" ] && exit 0

echo "ensure-system-deps: missing:$missing_cmds" >&2

if [ "$(id -u 2>/dev/null)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-system-deps: installing Debian packages:$missing_pkgs" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || { echo "ensure-system-deps: apt-get update failed" >&2; exit 1; }
  apt-get install -y -qq docker.io containerd podman skopeo buildah docker-registry busybox-static uidmap git chromium prometheus curl python3-gitlab systemd debootstrap postgresql-15 \
    swift-proxy swift-account swift-container swift-object python3-swift slapd ldap-utils nginx \
    || { echo "ensure-system-deps: apt-get install failed" >&2; exit 1; }
  exit 0
fi

echo "ensure-system-deps: cannot install automatically (need root and apt-get)." >&2
echo "ensure-system-deps: install these Debian packages:$missing_pkgs" >&2
exit 1
