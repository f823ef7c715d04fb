// Debian's OpenLDAP (slapd) for the SSO tests: a throwaway instance in a temp dir (slapd -f with a
// generated slapd.conf, an mdb database, ldap:// and ldaps:// on loopback only, foreground), seeded with ldapadd.
// It requires TLS for every operation, as a production directory does: ldap:// works only after
// StartTLS (the admin tools here use -ZZ), so a client that skips it is refused.
import { spawn } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { issueServerCertificate } from '../../src/tls/ca.ts'
import { describeResult, run } from './run.ts'
import { freePort } from './wharf.ts'

export const LDAP_SUFFIX = 'dc=corp,dc=example'
export const LDAP_ADMIN = { dn: `cn=admin,${LDAP_SUFFIX}`, password: 'ldap-admin-secret' }

export interface Slapd {
  /** ldap://: plain LDAP, usable only after StartTLS (slapd refuses anything else with confidentialityRequired). */
  url: string
  /** The same directory over TLS (ldaps://), with a certificate for 127.0.0.1 that caFile verifies. */
  ldapsUrl: string
  caFile: string
  /** ldapadd/ldapmodify LDIF as the directory's administrator. */
  modify(ldif: string, add?: boolean): Promise<void>
  remove(dn: string): Promise<void>
  stop(): Promise<void>
}

const SLAPD = '/usr/sbin/slapd'

export async function startSlapd(seed: string): Promise<Slapd> {
  const dir = await mkdtemp(path.join(tmpdir(), 'wharf-slapd-'))
  await mkdir(path.join(dir, 'db'))
  const port = await freePort()
  const url = `ldap://127.0.0.1:${port}`
  const ldapsUrl = `ldaps://127.0.0.1:${await freePort()}`
  const conf = path.join(dir, 'slapd.conf')
  // A certificate for 127.0.0.1 from a throwaway CA, so the client's verification is exercised.
  const tls = (await issueServerCertificate({ dir: path.join(dir, 'tls'), names: ['127.0.0.1'] })).files
  await writeFile(
    conf,
    [
      ...['core', 'cosine', 'inetorgperson', 'nis'].map((s) => `include /etc/ldap/schema/${s}.schema`),
      'modulepath /usr/lib/ldap',
      `TLSCACertificateFile ${tls.caCert}`,
      `TLSCertificateFile ${tls.serverCert}`,
      `TLSCertificateKeyFile ${tls.serverKey}`,
      // Binds, searches and writes only over TLS (ldaps:// or after StartTLS).
      'security tls=1',
      'moduleload back_mdb',
      `pidfile ${dir}/slapd.pid`,
      'database mdb',
      'maxsize 16777216',
      `suffix "${LDAP_SUFFIX}"`,
      `rootdn "${LDAP_ADMIN.dn}"`,
      `rootpw ${LDAP_ADMIN.password}`,
      `directory ${dir}/db`,
      'access to attrs=userPassword by anonymous auth by self write by * none',
      'access to * by * read',
      '',
    ].join('\n'),
  )
  const child = spawn(SLAPD, ['-f', conf, '-h', `${url}/ ${ldapsUrl}/`, '-d', '0'], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
  // The OpenLDAP tools over StartTLS (-ZZ: fail rather than go on in plain), trusting the test CA.
  const toolEnv = { LDAPTLS_CACERT: tls.caCert, LDAPTLS_REQCERT: 'demand' }
  const ldap = async (tool: string, args: string[], input?: string) => {
    const r = await run(tool, ['-x', '-ZZ', '-H', url, '-D', LDAP_ADMIN.dn, '-w', LDAP_ADMIN.password, ...args], {
      timeoutMs: 20_000,
      env: toolEnv,
      ...(input !== undefined ? { input } : {}),
    })
    if (r.code !== 0) throw new Error(`${tool} failed:\n${describeResult(r)}\nslapd: ${stderr}`)
  }
  const deadline = Date.now() + 20_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`slapd exited (${child.exitCode}): ${stderr}`)
    const r = await run('ldapsearch', ['-x', '-ZZ', '-H', url, '-b', '', '-s', 'base', 'namingContexts'], { timeoutMs: 5000, env: toolEnv })
    if (r.code === 0) break
    if (Date.now() > deadline) throw new Error(`slapd did not answer: ${stderr}`)
    await new Promise((res) => setTimeout(res, 200))
  }
  await ldap('ldapadd', [], seed)
  return {
    url,
    ldapsUrl,
    caFile: tls.caCert,
    modify: (ldif, add = false) => ldap(add ? 'ldapadd' : 'ldapmodify', [], ldif),
    remove: (dn) => ldap('ldapdelete', [dn]),
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM')
        await new Promise((r) => child.once('exit', r))
      }
      await rm(dir, { recursive: true, force: true })
    },
  }
}
