#!/bin/sh
# Stand-ins for the Docker Hub images of the classic docker-in-docker pipeline (`image: docker:latest`,
# `services: [docker:dind]`, a Dockerfile `FROM nginx`), built from the host's Debian packages only
# (busybox-static, docker.io, containerd, runc, tini), without any network access.
#
#   scripts/make-dind-images.sh OUTDIR
#
# Produces (deterministically; cached: a second run is a no-op):
#   OUTDIR/oci/                 OCI image layout with the refs docker, dind and nginx
#   OUTDIR/docker.docker.tar    docker-archive tagged docker:latest and docker:cli  (for `docker load`)
#   OUTDIR/dind.docker.tar      docker-archive tagged docker:dind
#   OUTDIR/nginx.docker.tar     docker-archive tagged nginx:latest
#   OUTDIR/images.env           KEY=VALUE lines: the manifest digest of each image
#
# Images (all linux/amd64; layers are shared the way the official images share them):
#   docker  busybox (every applet) + Debian's docker client at /usr/local/bin/docker with the C
#           library it links against, and docker-entrypoint.sh as the entrypoint (CMD sh): the
#           official image's logic, so with no DOCKER_HOST and no /var/run/docker.sock the client
#           talks to tcp://docker:2375 (tcp://docker:2376 when TLS client certificates exist).
#   dind    the docker image + dockerd, containerd, containerd-shim-runc-v2, runc, docker-init,
#           docker-proxy and their libraries; entrypoint dockerd-entrypoint.sh (CMD none), EXPOSE
#           2375 2376, VOLUME /var/lib/docker. With no arguments, or only `--flags`, it runs
#           `docker-init -- dockerd --host=unix:///var/run/docker.sock --host=tcp://0.0.0.0:2375
#           <defaults> <the arguments>`; any other command goes through docker-entrypoint.sh. The
#           defaults are the 2016 image's `--storage-driver=vfs` plus what this sandbox needs (no
#           iptables, no default bridge, cgroupfs, --tls=false); later flags win, so a service
#           `command:` such as ["--registry-mirror=http://…"] adds to them or overrides them. No
#           TLS certificates are made (no openssl here): DOCKER_TLS_CERTDIR is unset, which is what
#           the 2016 template, setting no variable, needs; a job that sets it gets a warning and
#           the plain port.
#   nginx   busybox httpd serving /usr/share/nginx/html on port 80 (EXPOSE 80, CMD httpd -f).
set -eu

# The script's own hash: an edited script rebuilds the cached images.
VERSION="wharf-dind-images-v1-$(sha256sum "$0" | cut -c1-16)"

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
[ -x "$BUSYBOX" ] || { echo "make-dind-images: busybox not found (install busybox-static)" >&2; exit 1; }
# Debian's paths (docker.io, containerd, runc, tini): the docker client is the package's, not any
# other `docker` on the PATH.
DOCKER_CLI=/usr/bin/docker
ENGINE_BINS="/usr/sbin/dockerd /usr/bin/containerd /usr/bin/containerd-shim-runc-v2 /usr/sbin/runc /usr/bin/docker-init /usr/sbin/docker-proxy"
for f in $DOCKER_CLI $ENGINE_BINS; do
  [ -x "$f" ] || { echo "make-dind-images: $f not found (apt-get install docker.io containerd runc tini)" >&2; exit 1; }
done
for tool in tar gzip sha256sum ldd awk; do
  command -v "$tool" >/dev/null 2>&1 || { echo "make-dind-images: $tool not found" >&2; exit 1; }
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
put() { h=$(sha "$1"); cp "$1" "$blobs/$h"; echo "$h"; }

MT_LAYER=application/vnd.oci.image.layer.v1.tar+gzip
MT_CONFIG=application/vnd.oci.image.config.v1+json
MT_MANIFEST=application/vnd.oci.image.manifest.v1+json
desc() { printf '{"mediaType":"%s","digest":"sha256:%s","size":%s}' "$1" "$2" "$3"; }

# layer NAME ROOTDIR: $work/NAME.tar (for docker-archives) and a gzip blob; records NAME_d/_s/_id
layer() {
  tar --sort=name --mtime="$MTIME" --owner=0 --group=0 --numeric-owner \
    --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$2" -cf "$work/$1.tar" .
  gzip -n -6 -c "$work/$1.tar" >"$work/$1.tar.gz"
  eval "${1}_id=\$(sha \"\$work/\$1.tar\")"
  eval "${1}_d=\$(put \"\$work/\$1.tar.gz\")"
  eval "${1}_s=\$(size \"\$work/\$1.tar.gz\")"
  rm -f "$work/$1.tar.gz"
}

# libs ROOT BINARY...: copies the shared libraries the binaries link against, at the same paths
libs() {
  r=$1; shift
  # (with several binaries ldd also prints each one's name, ending in ':')
  for lib in $(ldd "$@" 2>/dev/null | awk '/=>/ { print $3; next } $1 ~ /^\// && $1 !~ /:$/ { print $1 }' | sort -u); do
    [ -f "$lib" ] || continue
    mkdir -p "$r$(dirname "$lib")"
    cp -L "$lib" "$r$lib"
  done
}

# --- layer "base": busybox with every applet, the files a shell and dockerd expect
r="$work/root-base"
mkdir -p "$r/bin" "$r/sbin" "$r/usr/bin" "$r/usr/sbin" "$r/usr/local/bin" "$r/etc" "$r/tmp" "$r/root" "$r/run" "$r/var/lib" "$r/var/tmp"
chmod 1777 "$r/tmp" "$r/var/tmp"
ln -s ../run "$r/var/run"
cp "$BUSYBOX" "$r/bin/busybox"
chmod 0755 "$r/bin/busybox"
for applet in $("$BUSYBOX" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$r/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$r/etc/passwd"
printf 'root:x:0:\ndocker:x:2375:\nnogroup:x:65534:\n' >"$r/etc/group"
# containerd and dockerd resolve names through nsswitch; busybox has no /etc/hosts of its own.
printf 'hosts: files dns\n' >"$r/etc/nsswitch.conf"
printf 'NAME="wharf test image"\nID=wharf-test\nPRETTY_NAME="wharf test image (busybox, Debian binaries)"\n' >"$r/etc/os-release"
layer base "$r"

# --- layer "cli": the docker client and the official docker-entrypoint.sh behaviour
r="$work/root-cli"
mkdir -p "$r/usr/local/bin" "$r/certs/client"
cp "$DOCKER_CLI" "$r/usr/local/bin/docker"
libs "$r" "$DOCKER_CLI"
cat >"$r/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
# As docker-library/docker's docker-entrypoint.sh: run docker subcommands through docker, and pick
# a DOCKER_HOST when none is set: the local socket if there is one, else the `docker` service of
# the job (tcp://docker:2375, or :2376 with TLS when $DOCKER_TLS_CERTDIR/client holds certificates).
set -eu

if [ "$#" -eq 0 ]; then
	set -- sh
fi
# first arg is `-f` or `--some-option`
if [ "${1#-}" != "$1" ]; then
	set -- docker "$@"
fi
# a docker subcommand: `docker run docker ps`
if docker help "$1" > /dev/null 2>&1; then
	set -- docker "$@"
fi

_should_tls() {
	[ -n "${DOCKER_TLS_CERTDIR:-}" ] \
	&& [ -s "$DOCKER_TLS_CERTDIR/client/ca.pem" ] \
	&& [ -s "$DOCKER_TLS_CERTDIR/client/cert.pem" ] \
	&& [ -s "$DOCKER_TLS_CERTDIR/client/key.pem" ]
}

if [ -z "${DOCKER_HOST:-}" ] && [ -S /var/run/docker.sock ]; then
	export DOCKER_HOST=unix:///var/run/docker.sock
fi
if [ -z "${DOCKER_HOST:-}" ]; then
	if _should_tls || [ -n "${DOCKER_TLS_VERIFY:-}" ]; then
		export DOCKER_HOST='tcp://docker:2376'
	else
		export DOCKER_HOST='tcp://docker:2375'
	fi
fi
if [ "${DOCKER_HOST#tcp:}" != "$DOCKER_HOST" ] && [ -z "${DOCKER_TLS_VERIFY:-}" ] && [ -z "${DOCKER_CERT_PATH:-}" ] && _should_tls; then
	export DOCKER_TLS_VERIFY=1
	export DOCKER_CERT_PATH="$DOCKER_TLS_CERTDIR/client"
fi

exec "$@"
EOF
chmod 0755 "$r/usr/local/bin/docker-entrypoint.sh"
layer cli "$r"

# --- layer "engine": dockerd and what it runs
r="$work/root-engine"
mkdir -p "$r/usr/local/bin" "$r/var/lib/docker" "$r/etc/docker"
for f in $ENGINE_BINS; do cp "$f" "$r/usr/local/bin/"; done
# shellcheck disable=SC2086
libs "$r" $ENGINE_BINS
cat >"$r/usr/local/bin/dockerd-entrypoint.sh" <<'EOF'
#!/bin/sh
# As docker-library/docker's dockerd-entrypoint.sh, without TLS generation: with no arguments or
# only `--flags`, start dockerd on the local socket and tcp://0.0.0.0:2375 (under docker-init, for
# the zombies of exited shims) with the arguments after these defaults, so later flags win or add
# (--registry-mirror=…); any other command goes through docker-entrypoint.sh.
set -eu

# The 2016 image's --storage-driver=vfs, and what a daemon inside a container needs without
# --privileged: no iptables, no default bridge, cgroupfs. --tls=false says the plain port is meant
# (dockerd 20.10 otherwise delays its start by 15 s to warn about it).
DEFAULTS='--storage-driver=vfs --iptables=false --ip6tables=false --bridge=none --exec-opt=native.cgroupdriver=cgroupfs --tls=false'

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
	if [ -n "${DOCKER_TLS_CERTDIR:-}" ]; then
		echo >&2 "dockerd-entrypoint.sh: DOCKER_TLS_CERTDIR=$DOCKER_TLS_CERTDIR is set, but this image makes no TLS certificates: listening on plain tcp://0.0.0.0:2375 (set DOCKER_TLS_CERTDIR to \"\" to silence this)"
	fi
	# shellcheck disable=SC2086
	set -- dockerd --host=unix:///var/run/docker.sock --host=tcp://0.0.0.0:2375 $DEFAULTS "$@"
fi

if [ "$1" = 'dockerd' ]; then
	# a pid file left by an unclean stop keeps dockerd from starting
	find /run /var/run -iname 'docker*.pid' -delete 2>/dev/null || :
	set -- docker-init -- "$@"
else
	set -- docker-entrypoint.sh "$@"
fi
exec "$@"
EOF
chmod 0755 "$r/usr/local/bin/dockerd-entrypoint.sh"
layer engine "$r"

# --- layer "www": the nginx stand-in's page
r="$work/root-www"
mkdir -p "$r/usr/share/nginx/html"
printf '<!DOCTYPE html>\n<title>Welcome to nginx!</title>\n<h1>Welcome to nginx!</h1>\n<p>wharf test stand-in (busybox httpd)</p>\n' >"$r/usr/share/nginx/html/index.html"
chmod 0644 "$r/usr/share/nginx/html/index.html"
layer www "$r"

PATHS='PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

# image NAME CONFIG-BODY LAYER...: config + manifest blobs; sets NAME_m, NAME_ms, NAME_c
image() {
  name=$1; cfgbody=$2; shift 2
  diffids=''; history=''; descs=''
  for l in "$@"; do
    eval "id=\$${l}_id; d=\$${l}_d; s=\$${l}_s"
    diffids="$diffids${diffids:+,}\"sha256:$id\""
    history="$history${history:+,}{\"created\":\"$CREATED\",\"created_by\":\"make-dind-images.sh: $l\"}"
    descs="$descs${descs:+,}$(desc $MT_LAYER "$d" "$s")"
  done
  cfg="$work/config-$name.json"
  printf '{"created":"%s","architecture":"amd64","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":[%s]},"history":[%s]}' \
    "$CREATED" "$cfgbody" "$diffids" "$history" >"$cfg"
  c=$(put "$cfg"); cs=$(size "$cfg")
  man="$work/manifest-$name.json"
  printf '{"schemaVersion":2,"mediaType":"%s","config":%s,"layers":[%s]}' "$MT_MANIFEST" "$(desc $MT_CONFIG "$c" "$cs")" "$descs" >"$man"
  eval "${name}_m=\$(put \"\$man\"); ${name}_ms=\$(size \"\$man\"); ${name}_c=\$c"
}

image docker "{\"Env\":[\"$PATHS\",\"DOCKER_TLS_CERTDIR=/certs\"],\"Entrypoint\":[\"docker-entrypoint.sh\"],\"Cmd\":[\"sh\"],\"Labels\":{\"org.opencontainers.image.title\":\"wharf-test docker (cli)\"}}" base cli
image dind "{\"Env\":[\"$PATHS\"],\"Entrypoint\":[\"dockerd-entrypoint.sh\"],\"ExposedPorts\":{\"2375/tcp\":{},\"2376/tcp\":{}},\"Volumes\":{\"/var/lib/docker\":{}},\"Labels\":{\"org.opencontainers.image.title\":\"wharf-test docker:dind\"}}" base cli engine
image nginx "{\"Env\":[\"$PATHS\"],\"Cmd\":[\"httpd\",\"-f\",\"-v\",\"-p\",\"80\",\"-h\",\"/usr/share/nginx/html\"],\"ExposedPorts\":{\"80/tcp\":{}},\"StopSignal\":\"SIGTERM\",\"Labels\":{\"org.opencontainers.image.title\":\"wharf-test nginx\"}}" base www

ref() { printf '{"mediaType":"%s","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}' "$MT_MANIFEST" "$1" "$2" "$3"; }
printf '{"schemaVersion":2,"manifests":[%s,%s,%s]}' \
  "$(ref "$docker_m" "$docker_ms" docker)" "$(ref "$dind_m" "$dind_ms" dind)" "$(ref "$nginx_m" "$nginx_ms" nginx)" >"$layout/index.json"

# archive NAME TAGS-JSON LAYER...: docker-archive from the uncompressed layers
archive() {
  name=$1; tags=$2; shift 2
  da="$work/da-$name"
  mkdir -p "$da"
  eval "c=\$${name}_c"
  cp "$blobs/$c" "$da/$c.json"
  layers=''
  for l in "$@"; do
    eval "id=\$${l}_id"
    mkdir -p "$da/$id"
    ln "$work/$l.tar" "$da/$id/layer.tar" 2>/dev/null || cp "$work/$l.tar" "$da/$id/layer.tar"
    layers="$layers${layers:+,}\"$id/layer.tar\""
  done
  printf '[{"Config":"%s.json","RepoTags":%s,"Layers":[%s]}]' "$c" "$tags" "$layers" >"$da/manifest.json"
  tar --sort=name --mtime="$MTIME" --owner=0 --group=0 --numeric-owner --format=gnu -C "$da" -cf "$work/$name.docker.tar" .
  rm -rf "$da"
}
archive docker '["docker:latest","docker:cli"]' base cli
archive dind '["docker:dind"]' base cli engine
archive nginx '["nginx:latest"]' base www

cat >"$work/images.env" <<ENV
DOCKER_MANIFEST=sha256:$docker_m
DIND_MANIFEST=sha256:$dind_m
NGINX_MANIFEST=sha256:$nginx_m
NGINX_CONFIG=sha256:$nginx_c
ENV

find "$work" -mindepth 1 -maxdepth 1 ! -name oci ! -name '*.docker.tar' ! -name images.env -exec rm -rf {} +
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
  echo "make-dind-images: could not publish $out" >&2
  exit 1
fi
trap - EXIT INT TERM
