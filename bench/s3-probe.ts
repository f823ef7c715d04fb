// The S3 driver alone, without the registry around it: what its writes (as a push makes them) and
// its reads (as a pull sends them) cost in CPU per MiB, split by thread (/proc/self/task: the main
// thread, V8's GC workers), with the TCP connections each phase opened. 16 files of 8 MiB, 8 at once.
//   node_modules/.bin/node [node flags] bench/s3-probe.ts [--endpoint URL] [--mode monolithic|chunked] [--rounds 3]
// monolithic: one durable appender per file, then a synced commit (a monolithic push, or a PUT with the last chunk);
// chunked: a 5 MiB appender, then a durable one for the rest (two PATCHes and the PUT). Reads: openForSend into a
// null writable. Without --endpoint a Swift s3api is started for the run (scripts/swift-s3.sh, ~15-30 s).
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3'
import { randomBytes } from 'node:crypto'
import dc from 'node:diagnostics_channel'
import { readdirSync, readFileSync } from 'node:fs'
import { Writable } from 'node:stream'
import { parseArgs } from 'node:util'
import { createS3Driver } from '../src/storage/s3-driver.ts'
import { startSwift } from '../test/helpers/swift.ts'

const { values: args } = parseArgs({
  options: { endpoint: { type: 'string' }, mode: { type: 'string', default: 'monolithic' }, rounds: { type: 'string', default: '3' } },
})
if (args.mode !== 'monolithic' && args.mode !== 'chunked') throw new Error('--mode monolithic|chunked')
const SIZE = 8 << 20
const FILES = 16
const CONCURRENCY = 8
const creds = { accessKeyId: 'wharf:tester', secretAccessKey: 'testing' }

const swift = args.endpoint ? undefined : await startSwift()
const endpoint = args.endpoint ?? swift!.endpoint
const bucket = swift?.bucket ?? 'probe'
if (!swift) {
  const s3 = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: creds })
  await s3.send(new CreateBucketCommand({ Bucket: bucket })).catch((e: Error) => {
    if (e.name !== 'BucketAlreadyOwnedByYou') throw e
  })
}
const driver = createS3Driver({ endpoint, region: 'us-east-1', bucket, prefix: `probe-${Date.now()}/`, ...creds, forcePathStyle: true })
let connections = 0
dc.subscribe('net.client.socket', () => connections++)
const blob = randomBytes(SIZE)

/** CPU ms per thread name, from /proc/self/task/<tid>/stat (utime + stime, in clock ticks of 10 ms). */
function threads(): Map<string, number> {
  const out = new Map<string, number>()
  for (const tid of readdirSync('/proc/self/task')) {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    out.set(name, (out.get(name) ?? 0) + (Number(f[11]) + Number(f[12])) * 10)
  }
  return out
}

async function phase(name: string, op: (i: number) => Promise<void>): Promise<void> {
  const t0 = threads()
  const c0 = process.cpuUsage()
  const n0 = connections
  const w0 = performance.now()
  let next = 0
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < FILES) await op(next++)
    }),
  )
  const cpu = process.cpuUsage(c0)
  const mib = (FILES * SIZE) / 2 ** 20
  const split = [...threads()]
    .map(([k, v]) => [k, (v - (t0.get(k) ?? 0)) / mib] as const)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${k} ${v.toFixed(2)}`)
  console.log(
    `${name}: ${((cpu.user + cpu.system) / 1000 / mib).toFixed(2)} ms/MiB (user ${(cpu.user / 1000 / mib).toFixed(2)}), ` +
      `${(performance.now() - w0).toFixed(0)} ms, ${connections - n0} connections opened; by thread ms/MiB: ${split.join(', ')}`,
  )
}

async function write(path: string, from: number, to: number, durable: boolean): Promise<void> {
  const out = await driver.appender(path, from, { durable })
  for (let at = from; at < to; at += 64 << 10)
    if (!out.write(blob.subarray(at, Math.min(to, at + (64 << 10))))) await new Promise((ok) => out.once('drain', ok))
  await new Promise<void>((ok, ko) => out.end((err?: Error | null) => (err ? ko(err) : ok())))
}

console.log(`s3-probe: ${args.mode}, ${FILES} x 8 MiB, ${CONCURRENCY} at once, node ${process.version} ${process.execArgv.join(' ')}`)
try {
  for (let r = 0; r < Number(args.rounds); r++) {
    await phase(`write round ${r + 1}`, async (i) => {
      const tmp = `uploads/${r}-${i}`
      if (args.mode === 'chunked') {
        await write(tmp, 0, 5 << 20, false)
        await write(tmp, 5 << 20, SIZE, true)
      } else await write(tmp, 0, SIZE, true)
      await driver.commit(tmp, `blobs/${r}-${i}`, { synced: true })
    })
    await phase(`read round ${r + 1}`, async (i) => {
      const send = await driver.openForSend(`blobs/${r}-${i}`)
      let n = 0
      await send(
        new Writable({
          highWaterMark: 1 << 20,
          write(c: Buffer, _e, cb) {
            n += c.length
            cb()
          },
        }),
      )
      if (n !== SIZE) throw new Error(`read ${n} bytes of ${SIZE}`)
    })
  }
} finally {
  await swift?.stop()
}
