import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { digestOf } from '../core/digest.ts'
import { WharfError, type ErrorCode } from '../core/errors.ts'
import { parseManifest } from './manifest-parse.ts'
import { MEDIA_TYPES } from './media-types.ts'

const d = (s: string) => digestOf('sha256', s)
const CONFIG = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: d('config'), size: 6 }
const LAYER = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: d('layer'), size: 5 }
const DOCKER_CONFIG = { mediaType: 'application/vnd.docker.container.image.v1+json', digest: d('config'), size: 6 }
const DOCKER_LAYER = { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: d('layer'), size: 5 }

const json = (v: unknown) => Buffer.from(JSON.stringify(v))

function ociManifest(extra: Record<string, unknown> = {}) {
  return { schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: CONFIG, layers: [LAYER], ...extra }
}

function ociIndex(extra: Record<string, unknown> = {}) {
  return {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociIndex,
    manifests: [
      { mediaType: MEDIA_TYPES.ociManifest, digest: d('m1'), size: 100, platform: { os: 'linux', architecture: 'amd64' } },
      { mediaType: MEDIA_TYPES.ociManifest, digest: d('m2'), size: 101, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    ],
    ...extra,
  }
}

function rejects(body: Buffer, contentType: string | undefined, code: ErrorCode = 'MANIFEST_INVALID', reason?: RegExp): void {
  assert.throws(
    () => parseManifest(body, contentType),
    (e: unknown) => {
      assert.ok(e instanceof WharfError, `expected WharfError, got ${String(e)}`)
      assert.equal(e.code, code, e.message)
      if (reason) assert.match(e.message, reason)
      return true
    },
  )
}

describe('parseManifest: accepted kinds', () => {
  it('OCI image manifest', () => {
    const p = parseManifest(json(ociManifest()), MEDIA_TYPES.ociManifest)
    assert.equal(p.mediaType, MEDIA_TYPES.ociManifest)
    assert.deepEqual(p.config, CONFIG)
    assert.deepEqual(p.blobs, [CONFIG, LAYER])
    assert.deepEqual(p.manifests, [])
    assert.equal(p.subject, null)
    assert.equal(p.artifactType, null)
    assert.equal(p.annotations, null)
  })

  it('OCI image index', () => {
    const body = ociIndex({ annotations: { 'org.example': 'x' } })
    const p = parseManifest(json(body), MEDIA_TYPES.ociIndex)
    assert.equal(p.mediaType, MEDIA_TYPES.ociIndex)
    assert.equal(p.config, null)
    assert.deepEqual(p.blobs, [])
    assert.deepEqual(
      p.manifests.map((m) => m.digest),
      [d('m1'), d('m2')],
    )
    assert.deepEqual(p.manifests[1]!.platform, { os: 'linux', architecture: 'arm64', variant: 'v8' })
    assert.deepEqual(p.annotations, { 'org.example': 'x' })
  })

  it('Docker schema2 manifest', () => {
    const body = { schemaVersion: 2, mediaType: MEDIA_TYPES.dockerManifest, config: DOCKER_CONFIG, layers: [DOCKER_LAYER] }
    const p = parseManifest(json(body), MEDIA_TYPES.dockerManifest)
    assert.equal(p.mediaType, MEDIA_TYPES.dockerManifest)
    assert.deepEqual(
      p.blobs.map((b) => b.digest),
      [d('config'), d('layer')],
    )
  })

  it('Docker manifest list', () => {
    const body = {
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.dockerList,
      manifests: [{ mediaType: MEDIA_TYPES.dockerManifest, digest: d('m1'), size: 10, platform: { os: 'linux', architecture: 'amd64' } }],
    }
    const p = parseManifest(json(body), MEDIA_TYPES.dockerList)
    assert.equal(p.mediaType, MEDIA_TYPES.dockerList)
    assert.equal(p.manifests.length, 1)
  })

  it('Content-Type parameters and case are ignored', () => {
    const p = parseManifest(json(ociManifest()), 'Application/VND.oci.image.manifest.v1+json; charset=utf-8')
    assert.equal(p.mediaType, MEDIA_TYPES.ociManifest)
  })
})

describe('parseManifest: mediaType inference', () => {
  it('no mediaType and no Content-Type: image manifest when there is no manifests list', () => {
    const { mediaType: _, ...body } = ociManifest()
    assert.equal(parseManifest(json(body), undefined).mediaType, MEDIA_TYPES.ociManifest)
  })

  it('no mediaType and no Content-Type: index when there is a manifests list', () => {
    const { mediaType: _, ...body } = ociIndex()
    assert.equal(parseManifest(json(body), undefined).mediaType, MEDIA_TYPES.ociIndex)
  })

  it('a generic Content-Type is treated as missing', () => {
    const { mediaType: _, ...body } = ociIndex()
    assert.equal(parseManifest(json(body), 'application/json').mediaType, MEDIA_TYPES.ociIndex)
    assert.equal(parseManifest(json(ociManifest()), 'application/octet-stream').mediaType, MEDIA_TYPES.ociManifest)
  })

  it('body mediaType is used when Content-Type is absent', () => {
    assert.equal(parseManifest(json(ociIndex()), undefined).mediaType, MEDIA_TYPES.ociIndex)
  })

  it('Content-Type names the type when the body has no mediaType (OCI)', () => {
    const { mediaType: _, ...body } = ociManifest()
    assert.equal(parseManifest(json(body), MEDIA_TYPES.ociManifest).mediaType, MEDIA_TYPES.ociManifest)
  })

  it('Docker manifests must carry their mediaType in the body', () => {
    const body = { schemaVersion: 2, config: DOCKER_CONFIG, layers: [DOCKER_LAYER] }
    rejects(json(body), MEDIA_TYPES.dockerManifest, 'MANIFEST_INVALID', /mediaType/)
  })
})

describe('parseManifest: rejections', () => {
  it('body mediaType disagreeing with Content-Type', () => {
    rejects(json(ociManifest()), MEDIA_TYPES.ociIndex, 'MANIFEST_INVALID', /does not match/)
    rejects(json(ociIndex()), MEDIA_TYPES.ociManifest, 'MANIFEST_INVALID')
    rejects(json(ociManifest()), MEDIA_TYPES.dockerManifest, 'MANIFEST_INVALID', /does not match/)
  })

  it('invalid JSON and non-object JSON', () => {
    rejects(Buffer.from('{not json'), MEDIA_TYPES.ociManifest, 'MANIFEST_INVALID', /JSON/)
    rejects(Buffer.from(''), MEDIA_TYPES.ociManifest)
    rejects(Buffer.from('[]'), MEDIA_TYPES.ociManifest)
    rejects(Buffer.from('null'), MEDIA_TYPES.ociManifest)
    rejects(Buffer.from('"str"'), MEDIA_TYPES.ociManifest)
  })

  it('schemaVersion other than 2', () => {
    rejects(json(ociManifest({ schemaVersion: 1 })), MEDIA_TYPES.ociManifest, 'MANIFEST_INVALID', /schemaVersion/)
    rejects(json(ociManifest({ schemaVersion: '2' })), MEDIA_TYPES.ociManifest, 'MANIFEST_INVALID', /schemaVersion/)
    const { schemaVersion: _, ...noVersion } = ociManifest()
    rejects(json(noVersion), MEDIA_TYPES.ociManifest, 'MANIFEST_INVALID', /schemaVersion/)
  })

  it('a schema 1 body without a schema 1 Content-Type is MANIFEST_INVALID', () => {
    const schema1 = { schemaVersion: 1, name: 'x', tag: 'latest', architecture: 'amd64', fsLayers: [], history: [] }
    rejects(json(schema1), undefined, 'MANIFEST_INVALID', /schemaVersion/)
  })

  it('schema 1 Content-Types are refused as invalid, with a message that says why', () => {
    const schema1 = { schemaVersion: 1, name: 'x', tag: 'latest', architecture: 'amd64', fsLayers: [], history: [] }
    rejects(json(schema1), 'application/vnd.docker.distribution.manifest.v1+prettyjws', 'MANIFEST_INVALID', /schema 1/)
    rejects(json(schema1), 'application/vnd.docker.distribution.manifest.v1+json', 'MANIFEST_INVALID', /schema 1/)
  })

  it('an explicit Content-Type that is not a manifest type is refused, whatever the body says', () => {
    rejects(json(ociManifest()), 'text/plain', 'MANIFEST_INVALID', /media type/)
  })

  it('unknown manifest media types', () => {
    rejects(json(ociManifest({ mediaType: 'application/vnd.oci.image.config.v1+json' })), undefined, 'MANIFEST_INVALID', /media type/)
    rejects(json(ociManifest({ mediaType: 42 })), undefined, 'MANIFEST_INVALID')
    const { mediaType: _, ...body } = ociManifest()
    rejects(json(body), 'text/plain', 'MANIFEST_INVALID', /media type/)
  })

  it('an image manifest with manifests, and an index with config or layers', () => {
    rejects(json(ociManifest({ manifests: [] })), MEDIA_TYPES.ociManifest)
    rejects(json(ociIndex({ layers: [] })), MEDIA_TYPES.ociIndex)
    rejects(json(ociIndex({ config: CONFIG })), MEDIA_TYPES.ociIndex)
  })

  it('missing config, layers or manifests', () => {
    rejects(json(ociManifest({ config: undefined })), MEDIA_TYPES.ociManifest, 'MANIFEST_INVALID', /config/)
    rejects(json(ociManifest({ layers: undefined })), MEDIA_TYPES.ociManifest, 'MANIFEST_INVALID', /layers/)
    rejects(json(ociManifest({ layers: {} })), MEDIA_TYPES.ociManifest, 'MANIFEST_INVALID', /layers/)
    rejects(json(ociIndex({ manifests: undefined })), MEDIA_TYPES.ociIndex, 'MANIFEST_INVALID', /manifests/)
  })

  it('bad descriptors', () => {
    const bad: Array<[unknown, RegExp]> = [
      ['string', /descriptor/],
      [null, /descriptor/],
      [[], /descriptor/],
      [{ ...LAYER, mediaType: undefined }, /mediaType/],
      [{ ...LAYER, mediaType: 'not a media type' }, /media type/],
      [{ ...LAYER, mediaType: 7 }, /media/],
      [{ ...LAYER, digest: undefined }, /digest/],
      [{ ...LAYER, digest: 'sha256:abc' }, /digest/],
      [{ ...LAYER, digest: 'sha256:../../etc/passwd' }, /digest/],
      [{ ...LAYER, digest: `md5:${'a'.repeat(32)}` }, /digest/],
      [{ ...LAYER, size: undefined }, /size/],
      [{ ...LAYER, size: -1 }, /size/],
      [{ ...LAYER, size: 1.5 }, /size/],
      [{ ...LAYER, size: '5' }, /size/],
      [{ ...LAYER, size: 2 ** 60 }, /size/],
      [{ ...LAYER, urls: 'http://x' }, /urls/],
      [{ ...LAYER, urls: [1] }, /urls/],
    ]
    for (const [layer, reason] of bad) {
      rejects(json(ociManifest({ layers: [layer] })), MEDIA_TYPES.ociManifest, 'MANIFEST_INVALID', reason)
    }
    rejects(json(ociManifest({ config: { ...CONFIG, digest: 'nope' } })), MEDIA_TYPES.ociManifest, 'MANIFEST_INVALID', /config\.digest/)
    rejects(
      json(ociIndex({ manifests: [{ digest: d('x'), size: 1 }] })),
      MEDIA_TYPES.ociIndex,
      'MANIFEST_INVALID',
      /manifests\[0\]\.mediaType/,
    )
  })

  it('bad annotations and artifactType', () => {
    rejects(json(ociManifest({ annotations: { a: 1 } })), MEDIA_TYPES.ociManifest, 'MANIFEST_INVALID', /annotations/)
    rejects(json(ociManifest({ annotations: ['a'] })), MEDIA_TYPES.ociManifest, 'MANIFEST_INVALID', /annotations/)
    rejects(json(ociManifest({ artifactType: 5 })), MEDIA_TYPES.ociManifest, 'MANIFEST_INVALID', /artifactType/)
  })

  it('reports the offending descriptor in the detail', () => {
    try {
      parseManifest(json(ociManifest({ layers: [LAYER, { ...LAYER, digest: 'sha256:zz' }] })), MEDIA_TYPES.ociManifest)
      assert.fail('should throw')
    } catch (e) {
      assert.ok(e instanceof WharfError)
      assert.equal(e.detail.reason, 'layers[1].digest is not a valid digest')
      assert.equal(e.detail.digest, 'sha256:zz')
    }
  })
})

describe('parseManifest: required blobs, subject and artifactType', () => {
  it('foreign layers (with urls) are excluded from required blobs', () => {
    const foreign = {
      mediaType: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
      digest: d('foreign'),
      size: 9,
      urls: ['https://example.com/layer'],
    }
    const p = parseManifest(json(ociManifest({ layers: [foreign, LAYER] })), MEDIA_TYPES.ociManifest)
    assert.deepEqual(
      p.blobs.map((b) => b.digest),
      [CONFIG.digest, LAYER.digest],
    )
  })

  it('a layer with an empty urls list is still required', () => {
    const p = parseManifest(json(ociManifest({ layers: [{ ...LAYER, urls: [] }] })), MEDIA_TYPES.ociManifest)
    assert.deepEqual(
      p.blobs.map((b) => b.digest),
      [CONFIG.digest, LAYER.digest],
    )
  })

  it('docker foreign layers are excluded too', () => {
    const foreign = {
      mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
      digest: d('win'),
      size: 9,
      urls: ['https://mcr.example/x'],
    }
    const body = { schemaVersion: 2, mediaType: MEDIA_TYPES.dockerManifest, config: DOCKER_CONFIG, layers: [foreign, DOCKER_LAYER] }
    assert.deepEqual(
      parseManifest(json(body), MEDIA_TYPES.dockerManifest).blobs.map((b) => b.digest),
      [d('config'), d('layer')],
    )
  })

  it('subject and artifactType on an artifact manifest', () => {
    const subject = { mediaType: MEDIA_TYPES.ociManifest, digest: d('subject'), size: 500 }
    const empty = { mediaType: 'application/vnd.oci.empty.v1+json', digest: digestOf('sha256', '{}'), size: 2 }
    const p = parseManifest(
      json(ociManifest({ artifactType: 'application/vnd.example.sbom', config: empty, layers: [], subject, annotations: { k: 'v' } })),
      MEDIA_TYPES.ociManifest,
    )
    assert.equal(p.artifactType, 'application/vnd.example.sbom')
    assert.deepEqual(p.subject, subject)
    assert.deepEqual(p.annotations, { k: 'v' })
    assert.deepEqual(p.blobs, [empty])
  })

  it('subject on an index', () => {
    const subject = { mediaType: MEDIA_TYPES.ociManifest, digest: d('subject'), size: 500 }
    const p = parseManifest(json(ociIndex({ subject, artifactType: 'application/x' })), MEDIA_TYPES.ociIndex)
    assert.equal(p.subject?.digest, subject.digest)
    assert.equal(p.artifactType, 'application/x')
  })

  it('a subject must be a full descriptor', () => {
    rejects(json(ociManifest({ subject: { digest: d('s'), size: 1 } })), MEDIA_TYPES.ociManifest, 'MANIFEST_INVALID', /subject\.mediaType/)
    rejects(
      json(ociManifest({ subject: { mediaType: MEDIA_TYPES.ociManifest, digest: 'x', size: 1 } })),
      MEDIA_TYPES.ociManifest,
      'MANIFEST_INVALID',
      /subject\.digest/,
    )
    rejects(json(ociManifest({ subject: 'sha256:abc' })), MEDIA_TYPES.ociManifest, 'MANIFEST_INVALID', /subject/)
  })
})
