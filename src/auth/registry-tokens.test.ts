import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import { SignJWT, createLocalJWKSet, importJWK, jwtVerify, type JWK } from 'jose'
import { openTestDb } from '../../test/helpers/database.ts'
import { grants, RegistryTokens, type AccessEntry, type RegistryClaims } from './registry-tokens.ts'

const ISSUER = 'https://wharf.example'
const SERVICE = 'container_registry'
const ACCESS: AccessEntry[] = [{ type: 'repository', name: 'ns/p', actions: ['pull', 'push'] }]

async function database(t: TestContext) {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-tokens-'))
  const db = await openTestDb(dir)
  t.after(async () => {
    await db.destroy()
    await rm(dir, { recursive: true, force: true })
  })
  return db
}

async function tokens(
  db: Awaited<ReturnType<typeof database>>,
  opts: Partial<{ issuer: string; service: string; ttlSeconds: number }> = {},
) {
  const t = new RegistryTokens(db, { issuer: ISSUER, service: SERVICE, ttlSeconds: 300, ...opts })
  await t.load()
  return t
}

const header = (token: string) =>
  JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()) as { alg: string; kid: string; typ: string }
const payload = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>

async function rejects(p: Promise<unknown>) {
  await assert.rejects(p, (e: Error & { code?: string }) => e.code === 'UNAUTHORIZED')
}

describe('RegistryTokens', () => {
  it('issues an ES256 JWT with issuer, audience, subject, access, credential and a TTL; verify returns the claims', async (t) => {
    const tk = await tokens(await database(t))
    const { token, expiresIn, issuedAt } = await tk.issue('alice', ACCESS, { kind: 'pat', id: 4, userId: 2 })
    assert.equal(expiresIn, 300)
    assert.ok(Math.abs(Date.parse(issuedAt) - Date.now()) < 5000)
    const h = header(token)
    assert.equal(h.alg, 'ES256')
    assert.equal(h.typ, 'JWT')
    assert.ok(h.kid)
    const p = payload(token)
    assert.equal(p.iss, ISSUER)
    assert.equal(p.aud, SERVICE)
    assert.equal(p.sub, 'alice')
    assert.equal((p.exp as number) - (p.iat as number), 300)
    assert.ok(typeof p.jti === 'string')
    const claims = await tk.verify(token)
    assert.deepEqual(claims, {
      sub: 'alice',
      access: ACCESS,
      exp: p.exp as number,
      cred: { kind: 'pat', id: 4, userId: 2 },
    } satisfies RegistryClaims)
  })

  it('anonymous tokens carry no credential', async (t) => {
    const tk = await tokens(await database(t))
    const { token } = await tk.issue('anonymous', [], undefined)
    const claims = await tk.verify(token)
    assert.equal(claims.cred, undefined)
    assert.deepEqual(claims.access, [])
  })

  it('the expiry is capped by the credential’s own expiry (notAfter)', async (t) => {
    const tk = await tokens(await database(t))
    const { token, expiresIn } = await tk.issue('bob', ACCESS, undefined, new Date(Date.now() + 60_000))
    assert.ok(expiresIn <= 60 && expiresIn >= 58, String(expiresIn))
    assert.ok((payload(token).exp as number) <= Math.floor(Date.now() / 1000) + 60)
  })

  it('rejects a wrong audience or issuer (the same key, another service or server)', async (t) => {
    const db = await database(t)
    const tk = await tokens(db)
    const { token } = await tk.issue('alice', ACCESS, undefined)
    await rejects((await tokens(db, { service: 'another_service' })).verify(token))
    await rejects((await tokens(db, { issuer: 'https://evil.example' })).verify(token))
    assert.equal((await (await tokens(db)).verify(token)).sub, 'alice')
  })

  it('rejects expired, tampered, foreign-key, unsigned and garbage tokens', async (t) => {
    const db = await database(t)
    const tk = await tokens(db)
    const expired = (await (await tokens(db, { ttlSeconds: 0 })).issue('alice', ACCESS, undefined)).token
    await rejects(tk.verify(expired))

    const { token } = await tk.issue('alice', ACCESS, undefined)
    const [h, , s] = token.split('.')
    const widened = Buffer.from(
      JSON.stringify({ ...payload(token), access: [{ type: 'repository', name: 'other/p', actions: ['*'] }] }),
    ).toString('base64url')
    await rejects(tk.verify(`${h}.${widened}.${s}`))

    const otherServer = await tokens(await database(t))
    await rejects(tk.verify((await otherServer.issue('alice', ACCESS, undefined)).token))

    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${token.split('.')[1]}.`
    await rejects(tk.verify(none))
    for (const junk of ['', 'a.b.c', 'not a token']) await rejects(tk.verify(junk))
  })

  it('rejects a token signed with the right key id but another algorithm family', async (t) => {
    const db = await database(t)
    const tk = await tokens(db)
    const row = await db.selectFrom('signing_keys').selectAll().executeTakeFirstOrThrow()
    // An HS256 token keyed with the public key's text (the classic algorithm-confusion attack).
    const forged = await new SignJWT({ access: ACCESS })
      .setProtectedHeader({ alg: 'HS256', kid: row.kid })
      .setIssuer(ISSUER)
      .setAudience(SERVICE)
      .setSubject('mallory')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(row.public_jwk))
    await rejects(tk.verify(forged))
    // While a token really signed with that key verifies.
    const key = await importJWK(JSON.parse(row.private_jwk) as JWK, 'ES256')
    const genuine = await new SignJWT({ access: ACCESS })
      .setProtectedHeader({ alg: 'ES256', kid: row.kid })
      .setIssuer(ISSUER)
      .setAudience(SERVICE)
      .setSubject('handmade')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(key)
    assert.equal((await tk.verify(genuine)).sub, 'handmade')
  })

  it('a token signed with the key must carry exp and iat, a lifetime within the TTL and an iat not ahead of the clock', async (t) => {
    const db = await database(t)
    const tk = await tokens(db, { ttlSeconds: 600 })
    const row = await db.selectFrom('signing_keys').selectAll().executeTakeFirstOrThrow()
    const key = await importJWK(JSON.parse(row.private_jwk) as JWK, 'ES256')
    const now = Math.floor(Date.now() / 1000)
    const sign = (iat: number | undefined, exp: number | undefined) => {
      const jwt = new SignJWT({ access: ACCESS })
        .setProtectedHeader({ alg: 'ES256', kid: row.kid })
        .setIssuer(ISSUER)
        .setAudience(SERVICE)
        .setSubject('handmade')
      if (iat !== undefined) jwt.setIssuedAt(iat)
      if (exp !== undefined) jwt.setExpirationTime(exp)
      return jwt.sign(key)
    }
    await rejects(tk.verify(await sign(now, undefined)))
    await rejects(tk.verify(await sign(undefined, now + 60)))
    await rejects(tk.verify(await sign(now, now + 601)))
    // A long lifetime is refused even when little of it is left.
    await rejects(tk.verify(await sign(now - 100_000, now + 60)))
    await rejects(tk.verify(await sign(now + 120, now + 300)))
    assert.equal((await tk.verify(await sign(now, now + 600))).sub, 'handmade')
    assert.equal((await tk.verify(await sign(now + 30, now + 300))).sub, 'handmade', 'a signer clock slightly ahead is tolerated')
  })

  it('the key is created once and kept in the database: a second instance verifies the first one’s tokens', async (t) => {
    const db = await database(t)
    const a = await tokens(db)
    const b = await tokens(db)
    assert.equal((await db.selectFrom('signing_keys').selectAll().execute()).length, 1)
    const { token } = await a.issue('alice', ACCESS, undefined)
    assert.equal((await b.verify(token)).sub, 'alice')
  })

  it('rotation signs new tokens with the new key and keeps old tokens verifying; retiring the old key ends them', async (t) => {
    const db = await database(t)
    const tk = await tokens(db)
    const before = (await tk.issue('alice', ACCESS, undefined)).token
    const oldKid = header(before).kid
    await new Promise((r) => setTimeout(r, 5)) // keys are ordered by creation time
    const newKid = await tk.rotate()
    assert.notEqual(newKid, oldKid)
    const after = (await tk.issue('alice', ACCESS, undefined)).token
    assert.equal(header(after).kid, newKid)
    assert.equal((await tk.verify(before)).sub, 'alice')
    assert.equal((await tk.verify(after)).sub, 'alice')
    // A restarted server (a fresh instance) agrees.
    const restarted = await tokens(db)
    assert.equal(header((await restarted.issue('x', [], undefined)).token).kid, newKid)
    assert.equal((await restarted.verify(before)).sub, 'alice')
    // Retired keys verify nothing (retireOldKeys is what `wharf admin signing-key retire` runs).
    assert.equal(await tk.retireOldKeys(), 1)
    await rejects(tk.verify(before))
    const later = await tokens(db)
    await rejects(later.verify(before))
    assert.equal((await later.verify(after)).sub, 'alice')
  })
})

describe('RegistryTokens: job ID tokens', () => {
  it('the JWKS lists the public half of every key that is not retired, and ID tokens verify against it', async (t) => {
    const db = await database(t)
    const tok = await tokens(db, { issuer: `${ISSUER}/` })
    const first = (await tok.jwks()).keys
    assert.equal(first.length, 1)
    const newKid = await tok.rotate()
    const both = (await tok.jwks()).keys
    assert.deepEqual(both.map((k) => k.kid).sort(), [first[0]!.kid, newKid].sort())
    for (const k of both) {
      assert.equal(k.d, undefined, 'no private part')
      assert.equal(k.alg, 'ES256')
      assert.equal(k.use, 'sig')
    }
    const { token } = await tok.signIdToken({ sub: 'project_path:ns/p:ref_type:branch:ref:main', ref_protected: 'false' }, ['a', 'b'], 900)
    const { payload: claims } = await jwtVerify(token, createLocalJWKSet(await tok.jwks()), { issuer: ISSUER, audience: 'b' })
    assert.equal(claims.iss, ISSUER, 'the issuer has no trailing slash, as the discovery URL is built from it')
    assert.equal(claims.exp! - claims.iat!, 900)
    assert.equal(claims.ref_protected, 'false')
    await tok.retireOldKeys()
    assert.equal(header(token).kid, newKid, 'ID tokens are signed with the newest key')
    assert.deepEqual(
      (await tok.jwks()).keys.map((k) => k.kid),
      [newKid],
    )
  })

  it('never signs an ID token for the registry audience, or for none; ID tokens never verify as registry tokens', async (t) => {
    const tok = await tokens(await database(t))
    for (const aud of [SERVICE, ['sts.amazonaws.com', SERVICE], [], ''])
      await assert.rejects(tok.signIdToken({ sub: 's' }, aud, 60), (e: Error & { code?: string }) => e.code === 'BAD_REQUEST')
    const { token } = await tok.signIdToken({ sub: 's' }, 'sts.amazonaws.com', 60)
    await rejects(tok.verify(token))
  })
})

describe('grants', () => {
  const claims = (access: AccessEntry[]): RegistryClaims => ({ sub: 's', access, exp: 0 })
  it('exact repository name and action, or *', () => {
    const c = claims([
      { type: 'repository', name: 'ns/p', actions: ['pull'] },
      { type: 'repository', name: 'ns/q', actions: ['*'] },
      { type: 'registry', name: 'ns/r', actions: ['pull'] },
    ])
    assert.equal(grants(c, 'ns/p', 'pull'), true)
    assert.equal(grants(c, 'ns/p', 'push'), false)
    assert.equal(grants(c, 'ns/p/api', 'pull'), false, 'no prefix matching')
    assert.equal(grants(c, 'ns', 'pull'), false)
    assert.equal(grants(c, 'NS/P', 'pull'), false)
    for (const a of ['pull', 'push', 'delete'] as const) assert.equal(grants(c, 'ns/q', a), true, a)
    assert.equal(grants(c, 'ns/r', 'pull'), false, 'only repository entries count')
    assert.equal(grants(claims([]), 'ns/p', 'pull'), false)
  })
})
