// A local certificate authority and the server certificate it signs, so Wharf can serve HTTPS
// that Docker, podman, skopeo and curl verify after one file (ca.crt) is placed on each client.
//
// Node's crypto makes and parses keys but cannot build an X.509 certificate; @peculiar/x509
// encodes the certificates and signs them through Node's own WebCrypto. Its dependency
// injection (tsyringe) needs the Reflect metadata polyfill loaded first, hence the first import.
// Only `wharf tls init` loads this module, so the server never carries the polyfill.
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import { createPrivateKey, randomBytes, X509Certificate, webcrypto } from 'node:crypto'
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { isIP } from 'node:net'
import { join } from 'node:path'

type CryptoKey = webcrypto.CryptoKey
type CryptoKeyPair = webcrypto.CryptoKeyPair
const crypto = webcrypto
x509.cryptoProvider.set(crypto as unknown as ReturnType<typeof x509.cryptoProvider.get>)

/** ECDSA P-256 with SHA-256: small keys, supported by every TLS client Wharf serves. */
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const

export const VALIDITY = {
  /** A local root is installed once per client machine; 10 years means nobody re-distributes it. */
  caYears: 10,
  /** Apple platforms reject TLS server certificates valid for more than 825 days. */
  serverDays: 825,
  /** Backdate notBefore so a client whose clock is a little behind accepts a fresh certificate. */
  backdateMs: 5 * 60 * 1000,
} as const

export const FILES = { caCert: 'ca.crt', caKey: 'ca.key', serverCert: 'server.crt', serverKey: 'server.key' } as const

export class TlsError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'TlsError'
  }
}

export interface IssueOptions {
  /** Folder for ca.crt, ca.key, server.crt, server.key (created 0700 if missing). */
  dir: string
  /** DNS names and IP addresses for the server certificate's subjectAltName. */
  names: readonly string[]
  /** For tests. */
  now?: Date
}

export interface IssueResult {
  files: { caCert: string; caKey: string; serverCert: string; serverKey: string }
  /** False when an existing CA in the folder signed the new server certificate. */
  caCreated: boolean
  caSubject: string
  caNotAfter: Date
  dnsNames: string[]
  ipAddresses: string[]
  notAfter: Date
  /** Names carried over from the server certificate that was already in the folder. */
  keptNames: string[]
}

const DNS_NAME = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/

/** Splits names into DNS names (lowercased) and IP addresses; throws TlsError naming the first invalid one. */
export function classifyNames(names: readonly string[]): { dnsNames: string[]; ipAddresses: string[] } {
  const dnsNames: string[] = []
  const ipAddresses: string[] = []
  for (const raw of names) {
    const name = raw.trim().replace(/^\[(.*)\]$/, '$1')
    if (isIP(name)) {
      // One spelling per address (0:0:0:0:0:0:0:1 is ::1), so merging old and new names does not repeat one.
      const ip = isIP(name) === 6 ? new URL(`http://[${name}]/`).hostname.slice(1, -1) : name
      if (!ipAddresses.includes(ip)) ipAddresses.push(ip)
    } else {
      const dns = name.toLowerCase().replace(/\.$/, '')
      if (dns.length > 253 || !DNS_NAME.test(dns)) throw new TlsError(`not a hostname or IP address: ${JSON.stringify(raw)}`)
      if (!dnsNames.includes(dns)) dnsNames.push(dns)
    }
  }
  return { dnsNames, ipAddresses }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return false
      throw new TlsError(`cannot read ${path}: ${e.code ?? e.message}`)
    },
  )
}

/** Writes through a temp file and a rename, so a reader never sees half a file and a key is never briefly world-readable. */
async function writeAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`
  try {
    await writeFile(tmp, data, { mode, flag: 'wx' })
    await rename(tmp, path)
  } catch (e) {
    await rm(tmp, { force: true })
    throw e
  }
}

async function exportKeyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await crypto.subtle.exportKey('pkcs8', key))
  return `${x509.PemConverter.encode(der, 'PRIVATE KEY')}\n`
}

function serialNumber(): string {
  const bytes = randomBytes(16)
  bytes[0] = (bytes[0]! & 0x7f) | 0x01 // positive and without a leading zero byte
  return bytes.toString('hex')
}

interface Ca {
  cert: x509.X509Certificate
  key: CryptoKey
  pem: string
}

async function loadCa(certPath: string, keyPath: string, now: Date): Promise<Ca> {
  const [certPem, keyPem] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')])
  const hint = `move ${certPath} and ${keyPath} away to create a new CA`
  let nodeCert: X509Certificate
  let nodeKey: ReturnType<typeof createPrivateKey>
  try {
    nodeCert = new X509Certificate(certPem)
    nodeKey = createPrivateKey(keyPem)
  } catch (e) {
    throw new TlsError(`cannot parse the CA in ${certPath} / ${keyPath} (${(e as Error).message}); ${hint}`)
  }
  if (!nodeCert.ca) throw new TlsError(`${certPath} is not a CA certificate; ${hint}`)
  if (!nodeCert.checkPrivateKey(nodeKey)) throw new TlsError(`${keyPath} is not the key of ${certPath}; ${hint}`)
  const details = nodeKey.asymmetricKeyDetails
  if (nodeKey.asymmetricKeyType !== 'ec' || details?.namedCurve !== 'prime256v1') {
    throw new TlsError(`${keyPath} is not an ECDSA P-256 key (Wharf makes only those); ${hint}`)
  }
  if (new Date(nodeCert.validTo) <= now)
    throw new TlsError(`the CA in ${certPath} expired on ${new Date(nodeCert.validTo).toISOString()}; ${hint}`)
  const pkcs8 = nodeKey.export({ format: 'der', type: 'pkcs8' })
  const key = await crypto.subtle.importKey('pkcs8', pkcs8, ALG, false, ['sign'])
  const cert = new x509.X509Certificate(certPem)
  return { cert, key, pem: `${cert.toString('pem')}\n` }
}

async function createCa(now: Date): Promise<Ca & { keyPem: string }> {
  const keys = (await crypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair
  const notAfter = new Date(now)
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + VALIDITY.caYears)
  // A distinct name per CA, so a user who trusts several can tell them apart.
  const name = `CN=Wharf local CA ${randomBytes(4).toString('hex')}, O=Wharf`
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name,
    notBefore: new Date(now.getTime() - VALIDITY.backdateMs),
    notAfter,
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  })
  return { cert, key: keys.privateKey, pem: `${cert.toString('pem')}\n`, keyPem: await exportKeyPem(keys.privateKey) }
}

/** Copies the CA's own subjectKeyIdentifier, so chain building matches even for a CA made elsewhere. */
async function authorityKeyId(caCert: x509.X509Certificate): Promise<x509.AuthorityKeyIdentifierExtension> {
  const ski = caCert.getExtension(x509.SubjectKeyIdentifierExtension)
  return ski ? new x509.AuthorityKeyIdentifierExtension(ski.keyId) : x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey)
}

/** subjectAltName entries of the server certificate already in the folder, if the given CA issued it. */
async function previousNames(serverCertPath: string, ca: Ca): Promise<string[]> {
  let cert: X509Certificate
  try {
    cert = new X509Certificate(await readFile(serverCertPath))
  } catch {
    return []
  }
  if (!cert.checkIssued(new X509Certificate(ca.pem)) || !cert.verify(new X509Certificate(ca.pem).publicKey)) return []
  return (cert.subjectAltName ?? '')
    .split(', ')
    .map((entry) => /^(?:DNS|IP Address):(.+)$/.exec(entry)?.[1])
    .filter((n): n is string => n !== undefined)
}

/**
 * Creates (or reuses) the CA in `dir` and issues a new server certificate for `names` plus every
 * name of the server certificate already there, so re-running adds names and clients that trust
 * ca.crt keep trusting the server.
 */
export async function issueServerCertificate(opts: IssueOptions): Promise<IssueResult> {
  const now = opts.now ?? new Date()
  const files = {
    caCert: join(opts.dir, FILES.caCert),
    caKey: join(opts.dir, FILES.caKey),
    serverCert: join(opts.dir, FILES.serverCert),
    serverKey: join(opts.dir, FILES.serverKey),
  }
  const requested = classifyNames(opts.names)
  if (requested.dnsNames.length + requested.ipAddresses.length === 0)
    throw new TlsError('no hostname or IP address for the server certificate')
  await mkdir(opts.dir, { recursive: true, mode: 0o700 })

  const [hasCert, hasKey] = await Promise.all([exists(files.caCert), exists(files.caKey)])
  if (hasCert !== hasKey) {
    const [present, missing] = hasCert ? [files.caCert, files.caKey] : [files.caKey, files.caCert]
    throw new TlsError(`${present} exists but ${missing} does not; restore it, or move ${present} away to create a new CA`)
  }
  let ca: Ca
  if (hasCert) {
    ca = await loadCa(files.caCert, files.caKey, now)
  } else {
    const created = await createCa(now)
    await writeAtomic(files.caKey, created.keyPem, 0o600)
    await writeAtomic(files.caCert, created.pem, 0o644)
    ca = created
  }

  const previous = hasCert ? await previousNames(files.serverCert, ca) : []
  const { dnsNames, ipAddresses } = classifyNames([...requested.dnsNames, ...requested.ipAddresses, ...previous])
  const keptNames = [...dnsNames, ...ipAddresses].filter((n) => !requested.dnsNames.includes(n) && !requested.ipAddresses.includes(n))

  const keys = (await crypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair
  const notAfter = new Date(now.getTime() + VALIDITY.serverDays * 86_400_000)
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: `CN=${dnsNames[0] ?? ipAddresses[0]}, O=Wharf`,
    issuer: ca.cert.subject,
    notBefore: new Date(now.getTime() - VALIDITY.backdateMs),
    notAfter,
    publicKey: keys.publicKey,
    signingKey: ca.key,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      // ECDSA keys sign the handshake; keyEncipherment is for RSA key transport.
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
        ...ipAddresses.map((value) => ({ type: 'ip' as const, value })),
      ]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await authorityKeyId(ca.cert),
    ],
  })
  await writeAtomic(files.serverKey, await exportKeyPem(keys.privateKey), 0o600)
  await writeAtomic(files.serverCert, `${leaf.toString('pem')}\n${ca.pem}`, 0o644)

  return {
    files,
    caCreated: !hasCert,
    caSubject: ca.cert.subject,
    caNotAfter: ca.cert.notAfter,
    dnsNames,
    ipAddresses,
    notAfter,
    keptNames,
  }
}
