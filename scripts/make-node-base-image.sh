#!/bin/sh
# A stand-in for the official Node image, for building the repository's Dockerfile where Docker Hub
# is out of reach (CI, test/e2e/container-image.test.ts): a Debian bookworm root filesystem made
# with debootstrap (minbase plus git, as in the full `node:24-bookworm` image, so that the build
# needs no network), Node from the repository's `node` npm package (node_modules/node/bin/node) and
# npm from the `npm` npm package, at the official image's paths (/usr/local/bin/node,
# /usr/local/lib/node_modules/npm).
#
#   scripts/make-node-base-image.sh OUTDIR
#
# Produces (cached: a second run is a no-op until this script or the Node binary changes):
#   OUTDIR/rootfs.tar    the root filesystem, for
#                        docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
#                          --change 'CMD ["node"]' OUTDIR/rootfs.tar NAME
#
# Needs root (debootstrap), debootstrap, and the Debian mirror and npm registry the machine uses
# (DEBIAN_MIRROR, default http://deb.debian.org/debian).
set -eu

[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
out=$1
case "$out" in
  /*) ;;
  *) out="$(pwd)/$out" ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
NODE="$root/node_modules/node/bin/node"
[ -x "$NODE" ] || { echo "make-node-base-image: $NODE not found (run npm ci)" >&2; exit 1; }
DEBOOTSTRAP=$(command -v debootstrap 2>/dev/null || echo /usr/sbin/debootstrap)
[ -x "$DEBOOTSTRAP" ] || { echo "make-node-base-image: debootstrap not found (apt-get install debootstrap)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "make-node-base-image: debootstrap needs root" >&2; exit 1; }
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
NODE_VERSION=$("$NODE" --version)
# The npm that Node's own release of this major bundles (the official image ships that one).
NPM_SPEC=npm@11

# The script's own hash and the Node version: either change rebuilds the cached root filesystem.
VERSION="wharf-node-base-v1-$(sha256sum "$0" | cut -c1-16)-$NODE_VERSION"
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$VERSION" ]; then
  exit 0
fi

mkdir -p "$(dirname "$out")"
work="$out.tmp.$$"
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT INT TERM
export LC_ALL=C TZ=UTC

r="$work/rootfs"
"$DEBOOTSTRAP" --variant=minbase --include=git bookworm "$r" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
  tail -n 40 "$work/debootstrap.log" >&2
  echo "make-node-base-image: debootstrap failed" >&2
  exit 1
}
# As the official Debian images: no package caches or lists (apt-get update fetches them again).
rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/* "$r"/var/log/*.log "$r"/var/cache/debconf/*-old

mkdir -p "$r/usr/local/bin" "$r/usr/local/lib/node_modules"
cp "$NODE" "$r/usr/local/bin/node"
chmod 0755 "$r/usr/local/bin/node"
npm pack "$NPM_SPEC" --prefer-offline --pack-destination "$work" --silent >"$work/npm-pack.out"
mkdir -p "$r/usr/local/lib/node_modules/npm"
tar -xzf "$work/$(tail -n 1 "$work/npm-pack.out")" -C "$r/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$r/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$r/usr/local/bin/npx"

# Only the mounts debootstrap may leave behind; the image's /proc and /sys are the engine's.
for m in proc sys; do
  umount "$r/$m" 2>/dev/null || true
done
tar --sort=name --numeric-owner --one-file-system -C "$r" -cf "$work/rootfs.tar" .
rm -rf "$r" "$work"/*.tgz "$work/npm-pack.out" "$work/debootstrap.log"
printf '%s' "$VERSION" >"$work/.stamp"

# Publish atomically; another process may have won the race.
if [ -e "$out" ]; then
  if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$VERSION" ]; then
    exit 0
  fi
  mv "$out" "$out.old.$$" 2>/dev/null || true
  rm -rf "$out.old.$$"
fi
if ! mv -T "$work" "$out" 2>/dev/null; then
  if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$VERSION" ]; then
    exit 0
  fi
  echo "make-node-base-image: could not publish $out" >&2
  exit 1
fi
trap - EXIT INT TERM
