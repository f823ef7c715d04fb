// An S3-compatible store for tests: OpenStack Swift with s3api, all on loopback, started by
// scripts/swift-s3.sh (about 15-25 s). Start it once per test file; give each test its own key prefix.
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { createHash } from 'node:crypto'
import { promisify } from 'node:util'
import { CreateBucketCommand, DeleteObjectsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3'
import { repoRoot } from './wharf.ts'

const run = promisify(execFile)

export interface SwiftS3 {
  endpoint: string
  region: string
  accessKeyId: string
  secretAccessKey: string
  /** A bucket created for this server. */
  bucket: string
  /** A fresh key prefix (`t<n>/`) in the bucket. */
  newPrefix(): string
  /** Keys under a prefix (to check what a driver left behind). */
  keys(prefix: string): Promise<string[]>
  /** Removes every object under a prefix. */
  clear(prefix: string): Promise<void>
  client: S3Client
  stop(): Promise<void>
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
}

export async function startSwift(): Promise<SwiftS3> {
  const dir = await mkdtemp(path.join(tmpdir(), 'wharf-swift-'))
  const ports: number[] = []
  while (ports.length < 4) {
    const p = await freePort()
    if (!ports.includes(p)) ports.push(p)
  }
  const script = path.join(repoRoot, 'scripts', 'swift-s3.sh')
  const stop = async () => {
    await run('sh', [script, 'stop', dir]).catch(() => {})
    await rm(dir, { recursive: true, force: true })
  }
  try {
    await run('sh', [script, 'start', dir, ...ports.map(String)], { timeout: 120_000 })
  } catch (e) {
    await stop()
    throw e
  }
  const creds = { endpoint: `http://127.0.0.1:${ports[0]}`, region: 'us-east-1', accessKeyId: 'wharf:tester', secretAccessKey: 'testing' }
  const client = new S3Client({
    endpoint: creds.endpoint,
    region: creds.region,
    forcePathStyle: true,
    credentials: { accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  })
  // Multi-object delete needs Content-MD5 on Swift (as in the driver).
  client.middlewareStack.add(
    (next) => async (args) => {
      const req = args.request as { headers?: Record<string, string>; query?: Record<string, unknown>; body?: unknown }
      if (req.headers && req.query && 'delete' in req.query && typeof req.body === 'string')
        req.headers['content-md5'] = createHash('md5').update(req.body).digest('base64')
      return next(args)
    },
    { step: 'build', name: 'contentMd5' },
  )
  const bucket = 'wharf-test'
  // The first request may find the account not yet created everywhere: retried for a few seconds.
  for (let i = 0; ; i++) {
    try {
      await client.send(new CreateBucketCommand({ Bucket: bucket }))
      break
    } catch (e) {
      if ((e as Error).name === 'BucketAlreadyOwnedByYou') break
      if (i > 50) {
        await stop()
        throw e
      }
      await new Promise((r) => setTimeout(r, 200))
    }
  }
  let n = 0
  const keys = async (prefix: string) => {
    const out: string[] = []
    let token: string | undefined
    do {
      const res = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }))
      for (const o of res.Contents ?? []) out.push(o.Key!)
      token = res.IsTruncated ? res.NextContinuationToken : undefined
    } while (token)
    return out
  }
  return {
    ...creds,
    bucket,
    client,
    newPrefix: () => `t${++n}-${process.pid}/`,
    keys,
    async clear(prefix) {
      const all = await keys(prefix)
      for (let i = 0; i < all.length; i += 1000) {
        const { Errors } = await client.send(
          new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: all.slice(i, i + 1000).map((Key) => ({ Key })), Quiet: true } }),
        )
        if (Errors?.length) throw new Error(`cannot clear ${prefix}: ${Errors[0]!.Code}`)
      }
    },
    async stop() {
      client.destroy()
      await stop()
    },
  }
}
