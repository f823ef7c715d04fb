// The stand-in Docker Hub of the proxy tests (test/helpers/docker-hub.ts: docker-registry behind a
// shim with Docker Hub's token flow, CDN redirect and rate-limit headers), run as its own process
// for bench/proxy-bench.ts, so the shim's CPU does not share the benchmark client's event loop.
// Talks over the IPC channel of child_process.fork:
//   → { type: 'ready', url, backend, pid }           once listening
//   ← { type: 'counts' }  → { type: 'counts', counts: [[key, n], ...] }
//   ← { type: 'reset' }   → { type: 'reset' }         (clears the request counts)
// Closes the hub (and its docker-registry) when the parent disconnects.
import { startDockerHub } from '../test/helpers/docker-hub.ts'

const hub = await startDockerHub()
let closing = false
const close = async () => {
  if (closing) return
  closing = true
  await hub.close()
  process.exit(0)
}
process.on('disconnect', () => void close())
process.on('SIGTERM', () => void close())
process.on('message', (m: { type: string }) => {
  if (m.type === 'counts') process.send!({ type: 'counts', counts: [...hub.counts] })
  else if (m.type === 'reset') {
    hub.resetCounts()
    process.send!({ type: 'reset' })
  }
})
process.send!({ type: 'ready', url: hub.url, backend: hub.backend, pid: process.pid })
