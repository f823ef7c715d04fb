// A small upstream registry serving one image (library/alpine: a config and one random layer) on a
// local port: a process boundary for the pull-through cache's tests. Blobs are sent in 256 KiB pieces
// a few milliseconds apart, so readers follow a growing file; `state.corrupt` makes it send wrong
// layer bytes; `state.gets` counts requests by method and URL.
import { createHash, randomBytes } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { TestContext } from 'node:test'

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`

export async function oneImageUpstream(t: TestContext, opts: { layerBytes: number }) {
  const layerBytes = randomBytes(opts.layerBytes)
  const config = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}')
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(layerBytes), size: layerBytes.length }],
    }),
  )
  const state = { corrupt: false, gets: new Map<string, number>() }
  const blobs = new Map([
    [sha(layerBytes), layerBytes],
    [sha(config), config],
  ])
  const s: Server = createServer((req, res) => {
    state.gets.set(`${req.method} ${req.url}`, (state.gets.get(`${req.method} ${req.url}`) ?? 0) + 1)
    const m = /^\/v2\/library\/alpine\/(manifests|blobs)\/(.+)$/.exec(req.url!)
    if (m?.[1] === 'manifests')
      return res
        .writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'docker-content-digest': sha(manifest) })
        .end(manifest)
    const blob = m && blobs.get(m[2]!)
    if (!blob) return res.writeHead(404).end()
    const body = state.corrupt && blob === layerBytes ? Buffer.alloc(layerBytes.length, 8) : blob
    res.writeHead(200, { 'content-length': body.length })
    let off = 0
    const next = () => {
      if (off >= body.length) return res.end()
      const piece = body.subarray(off, off + (256 << 10))
      off += piece.length
      res.write(piece, () => setTimeout(next, 2))
    }
    next()
  })
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()))
  t.after(
    () =>
      new Promise<void>((r) => {
        s.closeAllConnections()
        s.close(() => r())
      }),
  )
  return {
    url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`,
    state,
    layerBytes,
    layer: sha(layerBytes),
    manifest: sha(manifest),
  }
}
