# Wharf's container image, from the `npm pack` tarball (compiled dist/, no tests) and the
# lockfile's production dependencies:
#
#   npm ci && npm pack                      # wharf-<version>.tgz in the repository root
#   docker build -t wharf .
#
# NODE_IMAGE is the official Node image for real use. CI, with no Docker Hub and no network, builds
# this same file from a local stand-in (scripts/make-node-base-image.sh: debootstrap + Node from the
# `node` npm package) with an npm cache in the build context; see test/e2e/container-image.test.ts.
# Settings come from WHARF_* variables (README, "Run in a container").
ARG NODE_IMAGE=node:24-bookworm-slim

# --- install: the package and its production dependencies, in a stage of its own so that npm's
# cache and the tarball stay out of the image.
FROM ${NODE_IMAGE} AS install
# npm-cache* is optional (a wildcard may match nothing): a context that carries an npm cache
# directory named npm-cache lets the install run without the registry, as CI's does.
COPY wharf-*.tgz package-lock.json npm-cache* /tmp/wharf/
# --ignore-scripts: no dependency needs an install script at run time (package.json's allowScripts
# allows only `node`'s). The `node` dependency is dropped: it exists to download a second Node
# (~120 MB) for `npx`-style use; the image runs the base image's.
RUN mkdir -p /opt/wharf \
 && tar -xzf /tmp/wharf/wharf-*.tgz -C /opt/wharf --strip-components=1 --no-same-owner \
 && cp /tmp/wharf/package-lock.json /opt/wharf/ \
 && cd /opt/wharf \
 && npm ci --omit=dev --ignore-scripts --prefer-offline --cache /tmp/wharf --no-audit --no-fund --no-update-notifier \
 && rm -rf node_modules/node node_modules/.bin/node package-lock.json

# --- the image
FROM ${NODE_IMAGE}
# The server runs `git http-backend` for git over HTTP. The slim Node image has no git (the full
# node:24-bookworm has, as does CI's stand-in): install it only when missing.
RUN command -v git >/dev/null || { apt-get update \
   && apt-get install -y --no-install-recommends git \
   && rm -rf /var/lib/apt/lists/*; } \
 && groupadd --system --gid 10001 wharf \
 && useradd --system --uid 10001 --gid wharf --home-dir /var/lib/wharf --no-create-home --shell /usr/sbin/nologin wharf \
 && install -d -o wharf -g wharf -m 0750 /var/lib/wharf
# (A fixed numeric id: `USER` below is numeric, so Kubernetes' runAsNonRoot can check it, and a
# bind-mounted data directory can be chowned to it beforehand.)
COPY --from=install /opt/wharf /opt/wharf
RUN ln -s /opt/wharf/bin/wharf.js /usr/local/bin/wharf && wharf --version

ENV NODE_ENV=production \
    WHARF_LISTEN=0.0.0.0:5000 \
    WHARF_DATA=/var/lib/wharf
VOLUME /var/lib/wharf
USER 10001:10001
EXPOSE 5000

# Ready = the database and blob storage answer (/-/readiness). Node's fetch, no curl; the port is
# WHARF_LISTEN's. Plain HTTP: with tls.cert set, override this (or terminate TLS in front).
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "const port = (process.env.WHARF_LISTEN || '').split(':').pop() || '5000'; fetch('http://127.0.0.1:' + port + '/-/readiness', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# docker stop's SIGTERM drains in-flight requests for shutdownGraceSeconds (30 s by default): give
# `docker run` a --stop-timeout above it.
ENTRYPOINT ["wharf"]
CMD ["serve"]
