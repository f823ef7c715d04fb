import 'reflect-metadata' // before @peculiar/x509, as in ca.ts
import assert from 'node:assert/strict'
import { createPrivateKey, X509Certificate } from 'node:crypto'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { createServer, get } from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import * as x509 from '@peculiar/x509'
import { ConfigError, loadConfig } from '../config/load.ts'
import { classifyNames, FILES, issueServerCertificate, TlsError, VALIDITY } from './ca.ts'

const DAY = 86_400_000
let root: string
let n = 0
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'wharf-tls-test-'))
})
after(async () => {
  await rm(root, { recursive: true, force: true })
})
const freshDir = () => join(root, `case-${++n}`, 'tls')

/** Every PEM certificate in a file, in order. */
function certsIn(pem: string): X509Certificate[] {
  return [...pem.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)].map((m) => new X509Certificate(m[0]))
}

async function load(dir: string) {
  const read = (f: string) => readFile(join(dir, f), 'utf8')
  const [caPem, caKeyPem, chainPem, keyPem] = await Promise.all([
    read(FILES.caCert),
    read(FILES.caKey),
    read(FILES.serverCert),
    read(FILES.serverKey),
  ])
  const chain = certsIn(chainPem)
  return {
    caPem,
    ca: new X509Certificate(caPem),
    caKey: createPrivateKey(caKeyPem),
    chain,
    leaf: chain[0]!,
    chainPem,
    keyPem,
    key: createPrivateKey(keyPem),
  }
}

describe('issueServerCertificate', () => {
  it('creates a CA and a server certificate that node:crypto parses and verifies', async () => {
    const dir = freshDir()
    const now = new Date()
    const r = await issueServerCertificate({ dir, names: ['Registry.Example', 'localhost', '127.0.0.1', '::1'], now })
    assert.equal(r.caCreated, true)
    assert.deepEqual(r.dnsNames, ['registry.example', 'localhost'])
    assert.deepEqual(r.ipAddresses, ['127.0.0.1', '::1'])
    const { ca, caKey, chain, leaf, key } = await load(dir)

    // The CA: self-signed, a CA, ECDSA P-256, 10 years.
    assert.equal(ca.ca, true)
    assert.equal(ca.subject, ca.issuer)
    assert.ok(ca.verify(ca.publicKey), 'CA is self-signed')
    assert.ok(ca.checkPrivateKey(caKey))
    assert.equal(caKey.asymmetricKeyType, 'ec')
    assert.equal(caKey.asymmetricKeyDetails?.namedCurve, 'prime256v1')
    const caYears = (ca.validToDate.getTime() - now.getTime()) / (365.25 * DAY)
    assert.ok(caYears > 9.99 && caYears < 10.01, `CA valid ${caYears} years`)
    assert.ok(ca.validFromDate.getTime() <= now.getTime())
    const caExt = new x509.X509Certificate(await readFile(r.files.caCert))
    const caUsage = caExt.getExtension(x509.KeyUsagesExtension)!
    assert.equal(caUsage.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign)
    assert.equal(caUsage.critical, true)
    assert.equal(caExt.getExtension(x509.BasicConstraintsExtension)!.critical, true)

    // The leaf: signed by the CA, for exactly the names, serverAuth, ~825 days, not a CA.
    assert.equal(chain.length, 2, 'server.crt holds the leaf then the CA')
    assert.equal(chain[1]!.fingerprint256, ca.fingerprint256)
    assert.equal(leaf.ca, false)
    assert.ok(leaf.checkIssued(ca))
    assert.ok(leaf.verify(ca.publicKey), 'leaf signature verifies with the CA key')
    assert.ok(leaf.checkPrivateKey(key))
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1')
    assert.equal(leaf.subjectAltName, 'DNS:registry.example, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1')
    assert.equal(leaf.checkHost('registry.example'), 'registry.example')
    assert.equal(leaf.checkHost('localhost'), 'localhost')
    assert.equal(leaf.checkHost('other.example'), undefined)
    assert.equal(leaf.checkIP('127.0.0.1'), '127.0.0.1')
    assert.equal(leaf.checkIP('10.0.0.1'), undefined)
    assert.deepEqual(leaf.keyUsage, ['1.3.6.1.5.5.7.3.1'])
    const days = (leaf.validToDate.getTime() - now.getTime()) / DAY
    assert.ok(Math.abs(days - VALIDITY.serverDays) < 1 / 24, `leaf valid ${days} days`)
    assert.ok(leaf.validFromDate.getTime() < now.getTime(), 'backdated for clock skew')
    assert.ok(leaf.validToDate.getTime() < ca.validToDate.getTime())
    assert.notEqual(leaf.serialNumber, ca.serialNumber)
  })

  it('writes both keys 0600 and the certificates world-readable', async () => {
    const dir = freshDir()
    await issueServerCertificate({ dir, names: ['localhost'] })
    const mode = async (f: string) => (await stat(join(dir, f))).mode & 0o777
    assert.equal(await mode(FILES.caKey), 0o600)
    assert.equal(await mode(FILES.serverKey), 0o600)
    assert.equal(await mode(FILES.caCert), 0o644)
    assert.equal(await mode(FILES.serverCert), 0o644)
    assert.equal((await stat(dir)).mode & 0o077, 0, 'a new folder is private')
  })

  it('re-running reuses the CA and adds names to those of the previous certificate', async () => {
    const dir = freshDir()
    await issueServerCertificate({ dir, names: ['localhost', '127.0.0.1'] })
    const first = await load(dir)
    const r = await issueServerCertificate({ dir, names: ['registry.example', '10.1.2.3'] })
    const second = await load(dir)
    assert.equal(r.caCreated, false)
    assert.equal(second.caPem, first.caPem, 'ca.crt unchanged')
    assert.equal(second.caKey.export({ format: 'pem', type: 'pkcs8' }), first.caKey.export({ format: 'pem', type: 'pkcs8' }))
    assert.notEqual(second.leaf.fingerprint256, first.leaf.fingerprint256)
    assert.notEqual(second.keyPem, first.keyPem, 'a new server key')
    assert.ok(second.leaf.verify(first.ca.publicKey), 'the new leaf verifies against the CA clients already trust')
    assert.deepEqual(r.dnsNames, ['registry.example', 'localhost'])
    assert.deepEqual(r.ipAddresses, ['10.1.2.3', '127.0.0.1'])
    assert.deepEqual(r.keptNames, ['localhost', '127.0.0.1'])
    assert.equal(second.leaf.checkHost('localhost'), 'localhost')
    assert.equal(second.leaf.checkIP('10.1.2.3'), '10.1.2.3')
  })

  it('serves a TLS handshake that verifies with ca.crt only, and fails without it', async (t) => {
    const dir = freshDir()
    await issueServerCertificate({ dir, names: ['localhost', '127.0.0.1'] })
    const { caPem, chainPem, keyPem } = await load(dir)
    const server = createServer({ cert: chainPem, key: keyPem }, (_req, res) => res.end('ok'))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())))
    const { port } = server.address() as AddressInfo
    // Connects to 127.0.0.1 and checks the certificate against `name` (an IP, or a DNS name sent as SNI).
    const fetchAs = (name: string, ca?: string) =>
      new Promise<string>((resolve, reject) => {
        const sni = name === '127.0.0.1' ? {} : { servername: name }
        get({ host: '127.0.0.1', port, path: '/', agent: false, ...sni, ...(ca ? { ca } : {}) }, (res) => {
          let body = ''
          res.on('data', (c: Buffer) => (body += c))
          res.on('end', () => resolve(body))
        }).on('error', reject)
      })
    assert.equal(await fetchAs('127.0.0.1', caPem), 'ok')
    assert.equal(await fetchAs('localhost', caPem), 'ok')
    await assert.rejects(fetchAs('other.example', caPem), /altnames/)
    await assert.rejects(fetchAs('127.0.0.1'), /self-signed certificate in certificate chain/)
  })

  it('refuses half a CA, an expired CA and bad names with one-line messages', async () => {
    const dir = freshDir()
    const long = new Date(Date.now() - 11 * 365 * DAY)
    await issueServerCertificate({ dir, names: ['localhost'], now: long })
    await assert.rejects(
      issueServerCertificate({ dir, names: ['localhost'] }),
      (e: Error) => e instanceof TlsError && /expired/.test(e.message) && !e.message.includes('\n'),
    )

    const half = freshDir()
    await issueServerCertificate({ dir: half, names: ['localhost'] })
    await rm(join(half, FILES.caKey))
    await assert.rejects(
      issueServerCertificate({ dir: half, names: ['localhost'] }),
      (e: Error) => e instanceof TlsError && e.message.includes(FILES.caKey),
    )

    const wrongKey = freshDir()
    const other = freshDir()
    await issueServerCertificate({ dir: wrongKey, names: ['localhost'] })
    await issueServerCertificate({ dir: other, names: ['localhost'] })
    await writeFile(join(wrongKey, FILES.caKey), await readFile(join(other, FILES.caKey)))
    await assert.rejects(
      issueServerCertificate({ dir: wrongKey, names: ['localhost'] }),
      (e: Error) => e instanceof TlsError && /is not the key of/.test(e.message),
    )

    assert.throws(() => classifyNames(['bad_name!']), TlsError)
    assert.throws(() => classifyNames(['-leading.example']), TlsError)
    assert.deepEqual(classifyNames(['*.Example.com', '[::1]', '0:0:0:0:0:0:0:1', 'a.example.']), {
      dnsNames: ['*.example.com', 'a.example'],
      ipAddresses: ['::1'],
    })
    await assert.rejects(issueServerCertificate({ dir: freshDir(), names: [] }), TlsError)
  })
})

describe('tls settings', () => {
  let dir: string
  before(async () => {
    dir = freshDir()
    await issueServerCertificate({ dir, names: ['localhost'] })
  })
  const files = () => ({ cert: join(dir, FILES.serverCert), key: join(dir, FILES.serverKey) })

  function configError(sources: Parameters<typeof loadConfig>[0], ...mention: string[]): void {
    assert.throws(
      () => loadConfig(sources),
      (e: Error) => {
        assert.ok(e instanceof ConfigError, String(e))
        assert.ok(!e.message.includes('\n'), e.message)
        for (const m of mention) assert.ok(e.message.includes(m), `${JSON.stringify(e.message)} should mention ${m}`)
        return true
      },
    )
  }

  it('accepts the generated pair from flags or environment and defaults publicUrl to https', () => {
    const fromFlags = loadConfig({ env: {}, flags: { 'tls-cert': files().cert, 'tls-key': files().key } })
    assert.deepEqual({ ...fromFlags.tls }, files())
    assert.equal(fromFlags.publicUrl, 'https://127.0.0.1:5000')
    const fromEnv = loadConfig({ env: { WHARF_TLS_CERT: files().cert, WHARF_TLS_KEY: files().key, WHARF_LISTEN: '0.0.0.0:443' } })
    assert.equal(fromEnv.publicUrl, 'https://127.0.0.1:443')
    assert.equal(loadConfig({ env: {} }).publicUrl, 'http://127.0.0.1:5000')
    assert.equal(
      loadConfig({ env: { WHARF_PUBLIC_URL: 'https://r.example' }, flags: { 'tls-cert': files().cert, 'tls-key': files().key } }).publicUrl,
      'https://r.example',
    )
  })

  it('wants both settings or neither', () => {
    configError({ env: {}, flags: { 'tls-cert': files().cert } }, 'tls.key', '--tls-key / WHARF_TLS_KEY', 'tls.cert is set')
    configError({ env: { WHARF_TLS_KEY: files().key } }, 'tls.cert', '--tls-cert / WHARF_TLS_CERT')
  })

  it('names the setting when a file is unreadable, not PEM, or the wrong key', () => {
    configError({ env: {}, flags: { 'tls-cert': join(dir, 'missing.crt'), 'tls-key': files().key } }, 'tls.cert', '--tls-cert', 'ENOENT')
    configError({ env: { WHARF_TLS_CERT: files().cert, WHARF_TLS_KEY: join(dir, 'nope') } }, 'tls.key', 'WHARF_TLS_KEY', 'ENOENT')
    configError({ env: {}, flags: { 'tls-cert': files().key, 'tls-key': files().key } }, 'tls.cert', 'no PEM certificate')
    configError({ env: {}, flags: { 'tls-cert': files().cert, 'tls-key': files().cert } }, 'tls.key', 'no unencrypted PEM private key')
    configError(
      { env: {}, flags: { 'tls-cert': files().cert, 'tls-key': join(dir, FILES.caKey) } },
      'tls.key',
      'is not the key of the certificate',
    )
  })

  it('lets tls init load a config whose files do not exist yet', () => {
    const c = loadConfig({ env: { WHARF_TLS_CERT: 'later.crt', WHARF_TLS_KEY: 'later.key' }, checkTlsFiles: false })
    assert.match(c.tls!.cert, /later\.crt$/)
  })
})
