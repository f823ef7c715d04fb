#!/usr/bin/env node
// Thin launcher. In the repository Node 24 runs the TypeScript sources directly (type stripping);
// Node refuses to strip types under node_modules, so the published package carries dist/, the
// same sources compiled by "npm pack" (prepack), and runs that.
import { existsSync } from 'node:fs'

const built = new URL('../dist/cli/main.js', import.meta.url)
await import(existsSync(built) ? built.href : '../src/cli/main.ts')
