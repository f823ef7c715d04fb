// wharf tls init: a local CA and a server certificate, and the exact steps that make clients trust it.
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { ConfigError, loadConfig, SETTINGS, type SettingFlag } from '../config/load.ts'
import { issueServerCertificate, TlsError, VALIDITY, type IssueResult } from '../tls/ca.ts'

export const TLS_USAGE = `Usage: wharf tls init [--hostname NAME ...] [--ip ADDRESS ...] [--out DIR] [options]

Creates a local certificate authority (ca.crt, ca.key) in DIR, unless one is already there, and
a server certificate signed by it (server.crt, server.key), valid ${VALIDITY.serverDays} days. The certificate
covers the publicUrl host, localhost, 127.0.0.1, every --hostname and --ip, and every name of the
server certificate already in DIR: re-running adds names, and clients keep trusting the same CA.

  --hostname NAME   a DNS name clients use (repeatable)
  --ip ADDRESS      an IP address clients use (repeatable)
  --out DIR         where the files go (default: <data>/tls)

The usual options (--config, --data, --public-url, ...) tell Wharf which host clients use.
`

function fail(message: string): never {
  process.stderr.write(`wharf: ${message}\n`)
  process.exit(2)
}

/** `wharf tls <subcommand> ...` */
export async function tlsCommand(args: string[]): Promise<void> {
  const [sub, ...rest] = args
  if (sub === undefined || sub === 'help' || sub === '--help' || sub === '-h') {
    process.stdout.write(TLS_USAGE)
    return
  }
  if (sub !== 'init') fail(`unknown command "tls ${sub}"; run "wharf tls help"`)

  const options: Record<string, { type: 'string'; multiple?: boolean }> = {
    config: { type: 'string' },
    hostname: { type: 'string', multiple: true },
    ip: { type: 'string', multiple: true },
    out: { type: 'string' },
  }
  for (const s of SETTINGS) options[s.flag] = { type: 'string' }
  let values: Record<string, string | string[] | undefined>
  try {
    values = parseArgs({ args: rest, options, strict: true, allowPositionals: false }).values
  } catch (e) {
    fail((e as Error).message)
  }
  const { config: file, hostname, ip, out, ...flags } = values
  let config
  try {
    config = loadConfig({ flags: flags as Partial<Record<SettingFlag, string>>, file: file as string | undefined, checkTlsFiles: false })
  } catch (e) {
    if (e instanceof ConfigError) fail(e.message)
    throw e
  }

  const httpsUrl = config.publicUrl.replace(/^http:/, 'https:')
  const publicHost = new URL(httpsUrl).hostname.replace(/^\[(.*)\]$/, '$1')
  const given = [...((hostname as string[] | undefined) ?? []), ...((ip as string[] | undefined) ?? [])]
  const dir = (out as string | undefined) ?? join(config.data, 'tls')
  let result: IssueResult
  try {
    result = await issueServerCertificate({ dir, names: [publicHost, ...given, 'localhost', '127.0.0.1'] })
  } catch (e) {
    if (e instanceof TlsError) fail(e.message)
    if ((e as NodeJS.ErrnoException).code) fail(`cannot write to ${dir}: ${(e as Error).message}`)
    throw e
  }
  process.stdout.write(instructions(result, httpsUrl, publicHost, given))
}

function instructions(r: IssueResult, httpsUrl: string, publicHost: string, given: string[]): string {
  const host = new URL(httpsUrl).host
  const port = new URL(httpsUrl).port
  const names = [...r.dnsNames, ...r.ipAddresses]
  const day = (d: Date) => d.toISOString().slice(0, 10)
  const lines = [
    r.caCreated
      ? `Created a local CA:  ${r.files.caCert}  (its key ${r.files.caKey} signs certificates: keep it private)`
      : `Reused the local CA: ${r.files.caCert}  (clients that trust it keep trusting the server)`,
    `Server certificate:  ${r.files.serverCert}  key ${r.files.serverKey}`,
    `  names: ${names.join(', ')}${r.keptNames.length ? `  (kept from the previous certificate: ${r.keptNames.join(', ')})` : ''}`,
    `  valid until ${day(r.notAfter)}; run this command again before then (the CA is valid until ${day(r.caNotAfter)})`,
    '',
    '1. Start Wharf with HTTPS (restart it if it is running):',
    `     wharf serve --tls-cert ${r.files.serverCert} --tls-key ${r.files.serverKey}`,
    '   or set WHARF_TLS_CERT and WHARF_TLS_KEY, or tls.cert and tls.key in the config file.',
    `   Clients then reach ${httpsUrl} (publicUrl: if you set it yourself, make it https://).`,
  ]
  const other = given.find((n) => n !== publicHost && !/^[0-9.:[\]]+$/.test(n))
  if (other) {
    const suggested = `https://${other.toLowerCase()}${port ? `:${port}` : ''}`
    lines.push(`   If clients use ${other}, start with --public-url ${suggested} so image names and logins use that name.`)
  }
  lines.push(
    '',
    '2. On each machine that pushes or pulls, place ONE file: ca.crt (no daemon restart, no --insecure-registry):',
    `     Docker:  /etc/docker/certs.d/${host}/ca.crt`,
    `              sudo mkdir -p /etc/docker/certs.d/${host} && sudo cp ${r.files.caCert} /etc/docker/certs.d/${host}/ca.crt`,
    `     podman, skopeo, buildah:  /etc/containers/certs.d/${host}/ca.crt   (or --cert-dir DIR with ca.crt in DIR)`,
    `     curl and other tools:  curl --cacert ${r.files.caCert} ${httpsUrl}/v2/`,
    `   The folder is named after the host:port clients put in image names; a client using another of the names above`,
    `   (e.g. ${publicHost === 'localhost' ? '127.0.0.1' : 'localhost'}${port ? `:${port}` : ''}) uses a folder of that name.`,
    '',
  )
  return lines.join('\n')
}
