#!/usr/bin/env -S node --initial-old-space-size=64 --max-semi-space-size=2
// --initial-old-space-size=64: V8 otherwise sizes the old generation from Wharf's small live heap
// (~25 MB), and the ArrayBuffers every socket read allocates (a cold cache pull is 200 MiB of them)
// then start a full mark-compact every ~100 ms; 64 MB of headroom cut a cold pull's CPU by about
// half (bench/RESULTS.md, proxy section) at no measured RSS cost: the limit only delays collection,
// and pages are committed as the heap actually grows. (A cold pull onto the file system now frees
// those buffers as it goes and runs as well without the flag, bench/RESULTS.md "Cold pull CPU, fourth
// round"; cache fills onto S3 and pushes still leave their body chunks to the collector.)
// NODE_OPTIONS does not take this flag, and setting it after start has no effect, so it is on every
// command line that starts the server: here (also the systemd unit, through this file), `npm start`, and bench/proxy-bench.ts.
// Thin launcher. In the repository Node 24 runs the TypeScript sources directly (type stripping);
// Node refuses to strip types under node_modules, so the published package carries dist/, the
// same sources compiled by "npm pack" (prepack), and runs that.
// --max-semi-space-size=2 (MiB): V8 grows the young generation to its maximum while Wharf starts
// and keeps it, about 30 MiB of resident memory at idle and 70 MiB under pushes; the larger space
// saved no measurable CPU (bench/RESULTS.md, "Lean data path").
import { existsSync } from 'node:fs'

const built = new URL('../dist/cli/main.js', import.meta.url)
await import(existsSync(built) ? built.href : '../src/cli/main.ts')
