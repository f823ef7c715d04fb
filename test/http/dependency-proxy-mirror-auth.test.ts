// The mirror listener with `dependencyProxy.mirrorAuth: token`: Docker's token flow against the
// main listener's /jwt/auth; any signed-in user (or registry-scoped token) pulls, anonymous never.
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { it, type TestContext } from 'node:test'
import { pino } from 'pino'
import { buildApp } from '../../src/app.ts'
import { openTestDb } from '../helpers/database.ts'
import { buildMirrorApp } from '../../src/proxy/index.ts'
import { createServices } from '../../src/services.ts'
import { createFsDriver } from '../../src/storage/fs-driver.ts'

const PUBLIC_URL = 'http://wharf.test'
const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`

async function setup(t: TestContext, auth: boolean, limits?: { maxConnectionsPerAddress: number }) {
  // An upstream that knows no image: a 404 from it proves the request got past authorization.
  const up = createServer((_req, res) => res.writeHead(404).end())
  await new Promise<void>((r) => up.listen(0, '127.0.0.1', () => r()))
  const dir = await mkdtemp(join(tmpdir(), 'wharf-mirror-auth-'))
  const db = await openTestDb(dir)
  const services = await createServices(db, createFsDriver(join(dir, 'storage')), {
    publicUrl: PUBLIC_URL,
    tokenTtlSeconds: 300,
    pageMax: 100,
    rootPassword: 'root-password-1',
    dependencyProxy: {
      upstreams: [{ host: 'docker.io', url: `http://127.0.0.1:${(up.address() as AddressInfo).port}` }],
      tagTtlSeconds: 60,
      upstreamTimeoutSeconds: 5,
      manifestBytes: 4 << 20,
    },
  })
  const logger = pino({ level: 'silent' })
  const app = await buildApp({ logger, ...services, publicUrl: PUBLIC_URL, limits: { manifestBytes: 4 << 20 } })
  const mirror = await buildMirrorApp({
    logger,
    proxy: services.dependencyProxy,
    auth: auth ? { auth: services.auth, realm: `${PUBLIC_URL}/jwt/auth` } : undefined,
    ...(limits ? { limits } : {}),
  })
  t.after(async () => {
    await mirror.close()
    await app.close()
    await db.destroy()
    up.close()
    await rm(dir, { recursive: true, force: true })
  })
  const token = async (authorization: string | undefined, scope: string) => {
    const res = await app.inject({
      method: 'GET',
      url: `/jwt/auth?service=container_registry&scope=${encodeURIComponent(scope)}`,
      headers: authorization ? { authorization } : {},
    })
    assert.equal(res.statusCode, 200, res.body)
    return (res.json() as { token: string }).token
  }
  return { services, mirror, token }
}

it('mirrorAuth token: challenges at /v2/ and per image, lets a signed-in user pull, refuses anonymous and unscoped tokens', async (t) => {
  const { services, mirror, token } = await setup(t, true)
  const base = await mirror.inject({ method: 'GET', url: '/v2/' })
  assert.equal(base.statusCode, 401)
  assert.equal(base.headers['www-authenticate'], `Bearer realm="${PUBLIC_URL}/jwt/auth",service="container_registry"`)
  const url = '/v2/library/alpine/manifests/3'
  const challenged = await mirror.inject({ method: 'GET', url })
  assert.equal(challenged.statusCode, 401)
  const scope = /scope="([^"]+)"/.exec(String(challenged.headers['www-authenticate']))![1]!
  assert.equal(scope, 'repository:dependency_proxy/docker.io/library/alpine:pull')

  const root = await token(basic('root', 'root-password-1'), scope)
  const pulled = await mirror.inject({ method: 'GET', url, headers: { authorization: `Bearer ${root}` } })
  assert.equal(pulled.statusCode, 404, pulled.body)
  assert.match(pulled.body, /docker\.io has no manifest library\/alpine:3/)
  assert.equal((await mirror.inject({ method: 'GET', url: '/v2/', headers: { authorization: `Bearer ${root}` } })).statusCode, 200)

  const anonymous = await token(undefined, scope)
  assert.equal((await mirror.inject({ method: 'GET', url, headers: { authorization: `Bearer ${anonymous}` } })).statusCode, 403)
  const user = await services.users.createUser({ username: 'ada', password: 'ada-password-1' })
  const apiOnly = await services.accessTokens.createPat(user.id, { name: 'api', scopes: ['read_api'] }, 'test')
  assert.equal(
    (await mirror.inject({ method: 'GET', url, headers: { authorization: `Bearer ${await token(basic('ada', apiOnly.token), scope)}` } }))
      .statusCode,
    403,
  )
  const registry = await services.accessTokens.createPat(user.id, { name: 'reg', scopes: ['read_registry'] }, 'test')
  assert.equal(
    (await mirror.inject({ method: 'GET', url, headers: { authorization: `Bearer ${await token(basic('ada', registry.token), scope)}` } }))
      .statusCode,
    404,
  )
  // Even so, the grant never includes push.
  const pushScope = await token(basic('root', 'root-password-1'), 'repository:dependency_proxy/docker.io/library/alpine:pull,push')
  const claims = JSON.parse(Buffer.from(pushScope.split('.')[1]!, 'base64url').toString()) as { access: Array<{ actions: string[] }> }
  assert.deepEqual(claims.access[0]!.actions, ['pull'])
})

it('mirrorAuth anonymous (the default): no token needed', async (t) => {
  const { mirror } = await setup(t, false)
  assert.equal((await mirror.inject({ method: 'GET', url: '/v2/' })).statusCode, 200)
  const res = await mirror.inject({ method: 'GET', url: '/v2/library/alpine/manifests/3' })
  assert.equal(res.statusCode, 404, res.body)
})

it("the mirror listener has the main listener's connection limits: over the per-address cap, 503 with the reason", async (t) => {
  const { mirror } = await setup(t, false, { maxConnectionsPerAddress: 2 })
  await mirror.listen({ host: '127.0.0.1', port: 0 })
  const port = (mirror.server.address() as AddressInfo).port
  const open = () =>
    new Promise<Socket>((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(s)).once('error', reject)
    })
  const answer = (s: Socket) =>
    new Promise<string>((resolve) => {
      let text = ''
      s.on('data', (b) => (text += b.toString()))
      s.once('close', () => resolve(text))
      s.write('GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    })
  const held = [await open(), await open()]
  const refused = await answer(await open())
  assert.match(refused, /^HTTP\/1\.1 503 /)
  assert.match(refused, /Too many open connections from your address \(limit 2\)/)
  try {
    assert.match(await answer(held[0]!), /^HTTP\/1\.1 200 /, 'the connections within the cap are served')
  } finally {
    for (const s of held) s.destroy()
  }
})
