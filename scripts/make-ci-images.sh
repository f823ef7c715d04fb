#!/bin/sh
# Root filesystems for CI job images, built from local files only (no network), for the runner's
# end-to-end tests and for trying `wharf runner --executor docker` on an offline machine.
#
#   scripts/make-ci-images.sh OUTDIR
#
# Produces (cached: a second run is a no-op):
#   OUTDIR/busybox.tar      busybox-static with every applet linked in /bin (sh, wget, nc, httpd,
#                           sleep, mkdir, ...), /tmp, /etc/passwd and /etc/group
#   OUTDIR/docker-cli.tar   the same plus the host's docker client (/usr/bin/docker) and the C
#                           library it links against, for `docker build`/`docker push` jobs
#
# Import them as images with:
#   docker import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' OUTDIR/busybox.tar NAME
set -eu

VERSION=wharf-ci-images-v1

[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
out=$1
case "$out" in
  /*) ;;
  *) out="$(pwd)/$out" ;;
esac

if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$VERSION" ]; then
  exit 0
fi

BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || BUSYBOX=/usr/bin/busybox
if [ ! -x "$BUSYBOX" ]; then
  echo "make-ci-images: busybox not found (install busybox-static)" >&2
  exit 1
fi

mkdir -p "$(dirname "$out")"
work="$out.tmp.$$"
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT INT TERM
export LC_ALL=C TZ=UTC
MTIME='2024-01-01 00:00:00'

pack() { # pack ROOT TARBALL
  tar --sort=name --mtime="$MTIME" --owner=0 --group=0 --numeric-owner -C "$1" -cf "$2" .
}

base() { # base ROOT: busybox with every applet
  r=$1
  mkdir -p "$r/bin" "$r/usr/bin" "$r/etc" "$r/tmp" "$r/root" "$r/var/run"
  chmod 1777 "$r/tmp"
  cp "$BUSYBOX" "$r/bin/busybox"
  chmod 0755 "$r/bin/busybox"
  for applet in $("$BUSYBOX" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$r/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
  printf 'wharf-ci\n' >"$r/etc/hostname"
}

base "$work/busybox"
pack "$work/busybox" "$work/busybox.tar"

if [ -x /usr/bin/docker ]; then
  r="$work/docker-cli"
  base "$r"
  cp /usr/bin/docker "$r/usr/bin/docker"
  # The client's shared libraries (glibc), at the paths the binary asks for.
  for lib in $(ldd /usr/bin/docker | awk '/=>/ { print $3; next } $1 ~ /^\// { print $1 }'); do
    [ -f "$lib" ] || continue
    mkdir -p "$r$(dirname "$lib")"
    cp -L "$lib" "$r$lib"
  done
  pack "$r" "$work/docker-cli.tar"
  rm -rf "$r"
fi
rm -rf "$work/busybox"
printf '%s' "$VERSION" >"$work/.stamp"

rm -rf "$out.old.$$"
if [ -e "$out" ]; then
  mv "$out" "$out.old.$$" 2>/dev/null || true
  rm -rf "$out.old.$$"
fi
if ! mv -T "$work" "$out" 2>/dev/null; then
  if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$VERSION" ]; then
    exit 0
  fi
  echo "make-ci-images: could not publish $out" >&2
  exit 1
fi
trap - EXIT INT TERM
