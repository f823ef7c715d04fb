#!/usr/bin/env -S node --max-semi-space-size=2
// Thin launcher. In the repository Node 24 runs the TypeScript sources directly (type stripping);
// Node refuses to strip types under node_modules, so the published package carries dist/, the
// same sources compiled by "npm pack" (prepack), and runs that.
// --max-semi-space-size=2 (MiB): V8 grows the young generation to its maximum while Wharf starts
// and keeps it, about 30 MiB of resident memory at idle and 70 MiB under pushes; the larger space
// saved no measurable CPU (bench/RESULTS.md, "Lean data path").
import { existsSync } from 'node:fs'

const built = new URL('../dist/cli/main.js', import.meta.url)
await import(existsSync(built) ? built.href : '../src/cli/main.ts')
