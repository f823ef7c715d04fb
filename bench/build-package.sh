#!/usr/bin/env bash
# Lays out Wharf's package as "npm pack" ships it (bin/, dist/ compiled by tsconfig.build.json with
# the static UI files, package.json) in DEST, with TREE's node_modules linked in, so the benches run
# what users run: bin/wharf.js and its launcher flags, on compiled JavaScript (no type stripping).
#   bench/build-package.sh DEST [TREE]        TREE: the source tree (default: this checkout)
# Start it as "$DEST/bin/wharf.js serve ..." with the repository's node first on PATH.
set -euo pipefail
dest=$1
tree=${2:-$(cd "$(dirname "$0")/.." && pwd)}
mkdir -p "$dest"
"$tree/node_modules/.bin/tsc" -p "$tree/tsconfig.build.json" --outDir "$dest/dist"
cp -r "$tree/src/web/static" "$dest/dist/web/static"
rm -f "$dest/dist/web/static/"*.d.ts
cp -r "$tree/bin" "$tree/package.json" "$dest/"
ln -s "$tree/node_modules" "$dest/node_modules"
