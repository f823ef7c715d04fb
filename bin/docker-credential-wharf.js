#!/usr/bin/env node
// Docker's credential helper for Wharf (src/cli/credential-helper.ts): docker, podman, buildah and
// skopeo run it for every pull and push of a host in `credHelpers`, so it loads only the helper
// (node built-ins), never the server. Like bin/wharf.js: dist/ in the published package, the
// TypeScript sources (type stripping) in the repository.
import { existsSync } from 'node:fs'

const built = new URL('../dist/cli/credential-helper.js', import.meta.url)
const { credentialHelper } = await import(existsSync(built) ? built.href : '../src/cli/credential-helper.ts')
process.exitCode = await credentialHelper(process.argv.slice(2), {
  stdin: process.stdin,
  write: (text) => process.stdout.write(text),
  env: process.env,
})
