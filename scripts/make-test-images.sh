#!/bin/sh
# Build the images used by the end-to-end tests, from local files only
# (busybox-static's /bin/busybox), without any network access.
#
#   scripts/make-test-images.sh OUTDIR
#
# Produces (deterministically; cached: a second run is a no-op):
#   OUTDIR/oci/                OCI image layout with these refs:
#       amd64    linux/amd64 image, 4 gzip layers, config Cmd ["/bin/sh"]
#       arm64    linux/arm64 image, same first 3 layers, its own 4th layer
#       index    OCI image index of the two images above
#   OUTDIR/amd64.docker.tar    docker-archive of the amd64 image, tagged
#                              localhost/wharf-test/multi:amd64 (for `docker load`)
#   OUTDIR/images.env          KEY=VALUE lines: digests of every manifest/blob
#
# Layers:
#   1. bin/busybox (static) + bin/sh, bin/echo, bin/cat, bin/ls symlinks
#   2. etc/wharf/hello.txt
#   3. srv/data.txt (~590 KB of `seq` output)
#   4. etc/wharf/arch.txt ("amd64" or "arm64")
#
# The busybox binary is the host's (amd64) in both images: the arm64 image is
# for registry round-trips only, never for running.
set -eu

VERSION=wharf-test-images-v1

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
  echo "make-test-images: busybox not found (install busybox-static)" >&2
  exit 1
fi
for tool in tar gzip sha256sum seq; do
  command -v "$tool" >/dev/null 2>&1 || { echo "make-test-images: $tool not found" >&2; exit 1; }
done

mkdir -p "$(dirname "$out")"
work="$out.tmp.$$"
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT INT TERM

export LC_ALL=C TZ=UTC
MTIME='2024-01-01 00:00:00'
CREATED='2024-01-01T00:00:00Z'

layout="$work/oci"
blobs="$layout/blobs/sha256"
mkdir -p "$blobs"
printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"

sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { wc -c <"$1" | tr -d ' '; }

# put FILE -> prints DIGEST-HEX, stores FILE as a blob
put() {
  h=$(sha "$1")
  cp "$1" "$blobs/$h"
  echo "$h"
}

# layer NAME ROOTDIR -> sets layer_digest, layer_size, layer_diffid
layer() {
  tar --sort=name --mtime="$MTIME" --owner=0 --group=0 --numeric-owner \
    --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$2" -cf "$work/$1.tar" .
  layer_diffid=$(sha "$work/$1.tar")
  gzip -n -9 -c "$work/$1.tar" >"$work/$1.tar.gz"
  layer_digest=$(put "$work/$1.tar.gz")
  layer_size=$(size "$work/$1.tar.gz")
}

# Layer 1: busybox
r="$work/root1"
mkdir -p "$r/bin"
cp "$BUSYBOX" "$r/bin/busybox"
chmod 0755 "$r/bin/busybox"
for applet in sh echo cat ls; do ln -s busybox "$r/bin/$applet"; done
layer l1 "$r"; l1_d=$layer_digest; l1_s=$layer_size; l1_id=$layer_diffid

# Layer 2: a small text file
r="$work/root2"
mkdir -p "$r/etc/wharf"
printf 'hello from wharf layer 2\n' >"$r/etc/wharf/hello.txt"
chmod 0644 "$r/etc/wharf/hello.txt"
layer l2 "$r"; l2_d=$layer_digest; l2_s=$layer_size; l2_id=$layer_diffid

# Layer 3: a larger deterministic file
r="$work/root3"
mkdir -p "$r/srv"
seq 1 100000 >"$r/srv/data.txt"
chmod 0644 "$r/srv/data.txt"
layer l3 "$r"; l3_d=$layer_digest; l3_s=$layer_size; l3_id=$layer_diffid

MT_LAYER=application/vnd.oci.image.layer.v1.tar+gzip
MT_CONFIG=application/vnd.oci.image.config.v1+json
MT_MANIFEST=application/vnd.oci.image.manifest.v1+json
MT_INDEX=application/vnd.oci.image.index.v1+json

desc() { printf '{"mediaType":"%s","digest":"sha256:%s","size":%s}' "$1" "$2" "$3"; }

# image ARCH -> sets img_manifest, img_manifest_size, img_config, img_l4
image() {
  arch=$1
  r="$work/root4-$arch"
  mkdir -p "$r/etc/wharf"
  printf '%s\n' "$arch" >"$r/etc/wharf/arch.txt"
  chmod 0644 "$r/etc/wharf/arch.txt"
  layer "l4-$arch" "$r"
  l4_d=$layer_digest; l4_s=$layer_size; l4_id=$layer_diffid

  cfg="$work/config-$arch.json"
  printf '{"created":"%s","architecture":"%s","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["/bin/sh"],"Labels":{"org.opencontainers.image.title":"wharf-test-multi"}},"rootfs":{"type":"layers","diff_ids":["sha256:%s","sha256:%s","sha256:%s","sha256:%s"]},"history":[{"created":"%s","created_by":"busybox"},{"created":"%s","created_by":"hello.txt"},{"created":"%s","created_by":"data.txt"},{"created":"%s","created_by":"arch.txt"}]}' \
    "$CREATED" "$arch" "$l1_id" "$l2_id" "$l3_id" "$l4_id" "$CREATED" "$CREATED" "$CREATED" "$CREATED" >"$cfg"
  c_d=$(put "$cfg"); c_s=$(size "$cfg")

  man="$work/manifest-$arch.json"
  printf '{"schemaVersion":2,"mediaType":"%s","config":%s,"layers":[%s,%s,%s,%s]}' \
    "$MT_MANIFEST" "$(desc $MT_CONFIG "$c_d" "$c_s")" \
    "$(desc $MT_LAYER "$l1_d" "$l1_s")" "$(desc $MT_LAYER "$l2_d" "$l2_s")" \
    "$(desc $MT_LAYER "$l3_d" "$l3_s")" "$(desc $MT_LAYER "$l4_d" "$l4_s")" >"$man"
  img_manifest=$(put "$man"); img_manifest_size=$(size "$man")
  img_config=$c_d
  img_l4=$l4_d
}

image amd64
amd64_m=$img_manifest; amd64_ms=$img_manifest_size; amd64_c=$img_config; amd64_l4=$img_l4
image arm64
arm64_m=$img_manifest; arm64_ms=$img_manifest_size; arm64_c=$img_config; arm64_l4=$img_l4

idx="$work/index-image.json"
printf '{"schemaVersion":2,"mediaType":"%s","manifests":[{"mediaType":"%s","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"}},{"mediaType":"%s","digest":"sha256:%s","size":%s,"platform":{"architecture":"arm64","os":"linux"}}]}' \
  "$MT_INDEX" "$MT_MANIFEST" "$amd64_m" "$amd64_ms" "$MT_MANIFEST" "$arm64_m" "$arm64_ms" >"$idx"
index_m=$(put "$idx"); index_ms=$(size "$idx")

ref() { printf '{"mediaType":"%s","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}' "$1" "$2" "$3" "$4"; }
printf '{"schemaVersion":2,"manifests":[%s,%s,%s]}' \
  "$(ref $MT_MANIFEST "$amd64_m" "$amd64_ms" amd64)" \
  "$(ref $MT_MANIFEST "$arm64_m" "$arm64_ms" arm64)" \
  "$(ref $MT_INDEX "$index_m" "$index_ms" index)" >"$layout/index.json"

# docker-archive of the amd64 image (for `docker load`), built by hand from
# the uncompressed layers so no other tool is needed.
da="$work/docker-archive"
mkdir -p "$da"
cp "$blobs/$amd64_c" "$da/$amd64_c.json"
for n in l1 l2 l3 l4-amd64; do
  h=$(sha "$work/$n.tar")
  mkdir -p "$da/$h"
  cp "$work/$n.tar" "$da/$h/layer.tar"
done
h1=$(sha "$work/l1.tar"); h2=$(sha "$work/l2.tar"); h3=$(sha "$work/l3.tar"); h4=$(sha "$work/l4-amd64.tar")
printf '[{"Config":"%s.json","RepoTags":["localhost/wharf-test/multi:amd64"],"Layers":["%s/layer.tar","%s/layer.tar","%s/layer.tar","%s/layer.tar"]}]' \
  "$amd64_c" "$h1" "$h2" "$h3" "$h4" >"$da/manifest.json"
tar --sort=name --mtime="$MTIME" --owner=0 --group=0 --numeric-owner --format=gnu \
  -C "$da" -cf "$work/amd64.docker.tar" .
rm -rf "$da"

cat >"$work/images.env" <<ENV
AMD64_MANIFEST=sha256:$amd64_m
AMD64_CONFIG=sha256:$amd64_c
ARM64_MANIFEST=sha256:$arm64_m
ARM64_CONFIG=sha256:$arm64_c
INDEX_MANIFEST=sha256:$index_m
LAYER1=sha256:$l1_d
LAYER2=sha256:$l2_d
LAYER3=sha256:$l3_d
AMD64_LAYER4=sha256:$amd64_l4
ARM64_LAYER4=sha256:$arm64_l4
LAYER1_DIFFID=sha256:$l1_id
ENV

# Drop the scratch files, keep only the outputs.
find "$work" -mindepth 1 -maxdepth 1 ! -name oci ! -name amd64.docker.tar ! -name images.env -exec rm -rf {} +
printf '%s' "$VERSION" >"$work/.stamp"

# Publish atomically; another process may have won the race.
rm -rf "$out.old.$$"
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
  echo "make-test-images: could not publish $out" >&2
  exit 1
fi
trap - EXIT INT TERM
