// LDAP sign-in against Debian's OpenLDAP (slapd, a throwaway instance on loopback that requires
// TLS: StartTLS on ldap://, or ldaps://, both verified with a test CA): a directory user signs in
// with their directory password (local passwords are disabled), gets the role their directory group
// maps to, pushes over git with a personal access token and gets registry tokens; once the
// directory no longer finds them, the next sync blocks them and their token stops working. A
// directory Wharf cannot use (down, a certificate the configured CA does not vouch for, TLS the
// directory demands but Wharf does not use) is explained to the administrator, tells users it
// cannot check their password (not that it is wrong), blocks nobody and leaves break glass open.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { issueServerCertificate } from '../../src/tls/ca.ts'
import { freePort, startWharf, type Wharf } from '../helpers/wharf.ts'
import { LDAP_ADMIN, LDAP_SUFFIX, startSlapd, type Slapd } from '../helpers/ldap.ts'
import { gitClient, type GitClient } from '../helpers/git.ts'
import { describeResult } from '../helpers/run.ts'

let wharf: Wharf
let slapd: Slapd
let git: GitClient
let pat = ''

const SEED = `dn: ${LDAP_SUFFIX}
objectClass: dcObject
objectClass: organization
dc: corp
o: Corp

dn: ou=people,${LDAP_SUFFIX}
objectClass: organizationalUnit
ou: people

dn: ou=groups,${LDAP_SUFFIX}
objectClass: organizationalUnit
ou: groups

dn: uid=frank,ou=people,${LDAP_SUFFIX}
objectClass: inetOrgPerson
uid: frank
cn: Frank Poole
sn: Poole
mail: frank@corp.example
userPassword: frank-ldap-pw

dn: ou=contractors,${LDAP_SUFFIX}
objectClass: organizationalUnit
ou: contractors

dn: uid=ivan,ou=contractors,${LDAP_SUFFIX}
objectClass: inetOrgPerson
uid: ivan
cn: Ivan Petrov
sn: Petrov
mail: ivan@partner.example
userPassword: ivan-ldap-pw

dn: uid=hwong,ou=contractors,${LDAP_SUFFIX}
objectClass: inetOrgPerson
uid: hwong
cn: Hannah Wong
sn: Wong
mail: hannah@corp.example
userPassword: hannah-ldap-pw

dn: cn=devs,ou=groups,${LDAP_SUFFIX}
objectClass: groupOfNames
cn: devs
member: uid=frank,ou=people,${LDAP_SUFFIX}
member: uid=placeholder,ou=people,${LDAP_SUFFIX}

dn: cn=leads,ou=groups,${LDAP_SUFFIX}
objectClass: groupOfNames
cn: leads
member: uid=placeholder,ou=people,${LDAP_SUFFIX}
`

async function registryToken(username: string, secret: string): Promise<number> {
  const r = await fetch(`${wharf.url}/jwt/auth?service=container_registry&scope=repository:team/app:push,pull`, {
    headers: { authorization: `Basic ${Buffer.from(`${username}:${secret}`).toString('base64')}` },
  })
  await r.arrayBuffer()
  return r.status
}

before(async () => {
  slapd = await startSlapd(SEED)
  const dir = {
    label: 'Corp directory',
    bindDn: LDAP_ADMIN.dn,
    bindPassword: LDAP_ADMIN.password,
    baseDn: `ou=people,${LDAP_SUFFIX}`,
    groupBaseDn: `ou=groups,${LDAP_SUFFIX}`,
    groups: [
      { from: 'devs', group: 'team', role: 'developer' },
      { from: 'leads', group: 'team', role: 'maintainer' },
    ],
  }
  // A CA that did not sign slapd's certificate.
  const otherCa = (await issueServerCertificate({ dir: path.join(slapd.caFile, '..', '..', 'other-ca'), names: ['127.0.0.1'] })).files
    .caCert
  ;[wharf, git] = await Promise.all([
    startWharf({
      port: await freePort(),
      env: {
        WHARF_SSO_LDAP: JSON.stringify([
          // slapd refuses plain LDAP: frank's sign-ins and the sync go through StartTLS.
          { id: 'corp', url: slapd.url, startTls: true, caFile: slapd.caFile, ...dir },
          { id: 'corp-ldaps', url: slapd.ldapsUrl, caFile: slapd.caFile, ...dir, label: 'Corp over ldaps' },
          // Contractors sign in only to accounts an administrator made, matched by email.
          {
            id: 'contractors',
            url: slapd.url,
            startTls: true,
            caFile: slapd.caFile,
            ...dir,
            label: 'Contractors',
            baseDn: `ou=contractors,${LDAP_SUFFIX}`,
            autoCreate: false,
            linkByEmail: true,
          },
          { id: 'down', url: `ldap://127.0.0.1:${await freePort()}`, ...dir, label: 'Down' },
          // TLS with a certificate no configured CA vouches for: ldaps without caFile, StartTLS with another CA.
          { id: 'untrusted', url: slapd.ldapsUrl, ...dir, label: 'Untrusted' },
          { id: 'wrong-ca', url: slapd.url, startTls: true, caFile: otherCa, ...dir, label: 'Wrong CA' },
          // StartTLS forgotten: the directory demands TLS.
          { id: 'plain', url: slapd.url, ...dir, label: 'Plain' },
          // A wrong service account password.
          {
            id: 'bad-bind',
            url: slapd.url,
            startTls: true,
            caFile: slapd.caFile,
            ...dir,
            bindPassword: 'not-the-bind-pw',
            label: 'Bad bind',
          },
        ]),
        WHARF_SSO_SYNC_INTERVAL_SECONDS: '2',
        WHARF_AUTH_PASSWORD_SIGN_IN: 'false',
      },
    }),
    gitClient(),
  ])
  assert.equal((await wharf.api('POST', '/api/v4/groups', { name: 'team', path: 'team' })).status, 201)
  await wharf.createProject('team/app')
  const hannah = await wharf.api('POST', '/api/v4/users', { username: 'hannah', name: 'Hannah', email: 'hannah@corp.example' })
  assert.equal(hannah.status, 201, hannah.describe)
})

after(async () => {
  await Promise.all([wharf?.stop(), slapd?.stop(), git?.dispose()])
})

describe('LDAP sign-in', { timeout: 120_000 }, () => {
  it('signs a directory user in with their directory password and maps their directory group', async () => {
    const options = (await (await fetch(`${wharf.url}/-/auth/providers`)).json()) as { directories: Array<{ label: string }> }
    assert.deepEqual(
      options.directories.map((d) => d.label),
      ['Corp directory', 'Corp over ldaps', 'Contractors', 'Down', 'Untrusted', 'Wrong CA', 'Plain', 'Bad bind'],
    )
    const wrong = await fetch(`${wharf.url}/-/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'frank', password: 'not-it' }),
    })
    assert.equal(wrong.status, 401)
    const res = await fetch(`${wharf.url}/-/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'frank', password: 'frank-ldap-pw' }),
    })
    assert.equal(res.status, 201, await res.clone().text())
    const body = (await res.json()) as { csrf_token: string; user: { id: number } }
    const cookie = res.headers.get('set-cookie')!.split(';')[0]!
    const user = await wharf.api('GET', `/api/v4/users/${body.user.id}`)
    assert.deepEqual([user.json.username, user.json.name, user.json.email], ['frank', 'Frank Poole', 'frank@corp.example'])
    const members = await wharf.api('GET', '/api/v4/groups/team/members')
    assert.equal((members.json as Array<{ username: string; access_level: number }>).find((m) => m.username === 'frank')?.access_level, 30)
    const made = await fetch(`${wharf.url}/api/v4/user/personal_access_tokens`, {
      method: 'POST',
      headers: { cookie, 'x-csrf-token': body.csrf_token, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'laptop', scopes: ['read_registry', 'write_registry', 'read_repository', 'write_repository'] }),
    })
    assert.equal(made.status, 201)
    pat = ((await made.json()) as { token: string }).token
  })

  it('accepts the directory password and the token for registry tokens and git', async () => {
    assert.equal(await registryToken('frank', 'frank-ldap-pw'), 200)
    assert.equal(await registryToken('frank', pat), 200)
    const repo = path.join(git.work, 'src')
    await mkdir(repo)
    await writeFile(path.join(repo, 'README'), 'ldap\n')
    for (const args of [
      ['init', '-b', 'main'],
      ['add', '.'],
      ['commit', '-m', 'first'],
    ])
      assert.equal((await git.git(args, { cwd: repo })).code, 0)
    const push = await git.git(['push', `${wharf.url}/team/app.git`, 'main'], { cwd: repo, creds: { username: 'frank', password: pat } })
    assert.equal(push.code, 0, describeResult(push))
  })

  it('links a first sign-in to the account with the entry’s email, and refuses one without an account, saying why', async () => {
    const signIn = (username: string, password: string) =>
      fetch(`${wharf.url}/-/session`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username, password }),
      })
    const linked = await signIn('hwong', 'hannah-ldap-pw')
    assert.equal(linked.status, 201, await linked.clone().text())
    assert.equal(((await linked.json()) as { user: { username: string } }).user.username, 'hannah')
    const links = await wharf.api('GET', '/api/v4/audit_events?action=sso.linked&actor=hannah')
    assert.deepEqual(
      (links.json as Array<{ details: Record<string, string> }>).map((e) => [e.details.provider, e.details.how]),
      [['contractors', 'email']],
    )
    // Signs in as hannah from now on, by the link (not by the email again).
    assert.equal(await registryToken('hwong', 'hannah-ldap-pw'), 200)
    const refused = await signIn('ivan', 'ivan-ldap-pw')
    assert.equal(refused.status, 401)
    assert.match(((await refused.json()) as { message: string }).message, /no Wharf account is linked to your directory account/)
    const failures = await wharf.api('GET', '/api/v4/audit_events?action=sso.failure&actor=ivan')
    assert.deepEqual(
      (failures.json as Array<{ details: Record<string, string> }>).map((e) => [e.details.provider, e.details.reason]),
      [['contractors', 'not_allowed']],
    )
    assert.equal((await wharf.api('GET', '/api/v4/users?username=ivan')).json.length, 0)
  })

  it('tells the administrator why each unusable directory fails, and what to set', async () => {
    const status = await wharf.api('GET', '/api/v4/admin/sso')
    const by = Object.fromEntries((status.json.providers as Array<{ id: string; ok: boolean; error: string | null }>).map((p) => [p.id, p]))
    assert.equal(by.corp!.ok, true, by.corp!.error ?? '')
    assert.equal(by['corp-ldaps']!.ok, true, by['corp-ldaps']!.error ?? '')
    assert.match(by.down!.error!, /cannot use the directory at ldap:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/)
    assert.match(
      by.untrusted!.error!,
      /TLS certificate of ldaps:\/\/127\.0\.0\.1:\d+ is not trusted \(SELF_SIGNED_CERT_IN_CHAIN.*set caFile/,
    )
    assert.match(
      by['wrong-ca']!.error!,
      /TLS certificate of ldap:\/\/127\.0\.0\.1:\d+ is not trusted \(SELF_SIGNED_CERT_IN_CHAIN.*set caFile/,
    )
    assert.match(by.plain!.error!, /requires TLS .*use ldaps:\/\/ or startTls: true/)
    assert.match(by['bad-bind']!.error!, /bad-bind: the directory refused bindDn\/bindPassword/)
    assert.ok(!status.text.includes(LDAP_ADMIN.password))
    assert.ok(!(await wharf.logTail(400)).includes(LDAP_ADMIN.password), 'the bind password is never logged')
  })

  it('tells a user the directories cannot check their password, audits it, and keeps break glass open', async () => {
    // Nobody in the working directories: the unusable ones might have had them.
    const res = await fetch(`${wharf.url}/-/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'grace', password: 'grace-ldap-pw' }),
    })
    assert.equal(res.status, 503)
    const problem = (await res.json()) as { message: string }
    assert.match(problem.message, /^503 Down, Untrusted, Wrong CA, Plain, Bad bind cannot check your password right now\. Try again later/)
    assert.doesNotMatch(problem.message, /127\.0\.0\.1|SELF_SIGNED|caFile/, 'the administrator’s detail stays on the admin page')
    const audit = await wharf.api('GET', '/api/v4/audit_events?action=sso.failure&actor=grace')
    const reasons = (audit.json as Array<{ details: { provider: string; reason: string } }>).map(
      (e) => `${e.details.provider}:${e.details.reason}`,
    )
    assert.deepEqual(reasons.sort(), [
      'bad-bind:misconfigured',
      'down:unreachable',
      'plain:misconfigured',
      'untrusted:misconfigured',
      'wrong-ca:misconfigured',
    ])
    // The same for docker login, in the registry token endpoint's own format.
    const token = await fetch(`${wharf.url}/jwt/auth?service=container_registry`, {
      headers: { authorization: `Basic ${Buffer.from('grace:grace-ldap-pw').toString('base64')}` },
    })
    assert.equal(token.status, 503)
    assert.match(((await token.json()) as { errors: Array<{ message: string }> }).errors[0]!.message, /cannot check your password/)
    // Wharf's own tokens (here a credential helper's secret) are never sent to a directory: a wrong one is just wrong.
    assert.equal(await registryToken('grace', 'wharf-ls-not-a-real-secret'), 401)
    // A user a working directory knows gets "wrong password", not "unavailable".
    const wrong = await fetch(`${wharf.url}/-/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'frank', password: 'still-not-it' }),
    })
    assert.equal(wrong.status, 401)
    // Local passwords are off here, but directory passwords are not: the message must not say passwords are disabled.
    assert.match(
      ((await wrong.json()) as { message: string }).message,
      /invalid username, directory password or token \(local passwords are disabled/,
    )
    // An administrator's local password (break glass, local passwords being off) works while directories are down.
    const root = await fetch(`${wharf.url}/-/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'root', password: wharf.rootPassword }),
    })
    assert.equal(root.status, 201, await root.clone().text())
  })

  it('follows the directory’s group changes at the next sync', async () => {
    await slapd.modify(
      `dn: cn=leads,ou=groups,${LDAP_SUFFIX}\nchangetype: modify\nadd: member\nmember: uid=frank,ou=people,${LDAP_SUFFIX}\n`,
    )
    await slapd.modify(
      `dn: cn=devs,ou=groups,${LDAP_SUFFIX}\nchangetype: modify\ndelete: member\nmember: uid=frank,ou=people,${LDAP_SUFFIX}\n`,
    )
    const level = async () =>
      ((await wharf.api('GET', '/api/v4/groups/team/members')).json as Array<{ username: string; access_level: number }>).find(
        (m) => m.username === 'frank',
      )?.access_level
    const deadline = Date.now() + 30_000
    while ((await level()) !== 40) {
      assert.ok(Date.now() < deadline, `frank's role did not follow the directory:\n${await wharf.logTail(30)}`)
      await new Promise((r) => setTimeout(r, 500))
    }
    const audit = await wharf.api('GET', '/api/v4/audit_events?action=sso.group_sync&actor=frank')
    assert.ok((audit.json as Array<{ details: { access_level: number } }>).some((e) => e.details.access_level === 40))
  })

  it('blocks the user once the directory no longer finds them: token, password and git refused', async () => {
    await slapd.remove(`cn=devs,ou=groups,${LDAP_SUFFIX}`)
    await slapd.remove(`uid=frank,ou=people,${LDAP_SUFFIX}`)
    const deadline = Date.now() + 30_000
    while ((await wharf.api('GET', '/api/v4/users?username=frank')).json[0]?.state !== 'blocked') {
      assert.ok(Date.now() < deadline, `frank was not blocked:\n${await wharf.logTail(30)}`)
      await new Promise((r) => setTimeout(r, 500))
    }
    assert.equal(await registryToken('frank', pat), 401)
    // Refused; 503 rather than 401 here because this instance's unusable directories might still list frank.
    assert.equal(await registryToken('frank', 'frank-ldap-pw'), 503)
    const clone = await git.git(['clone', `${wharf.url}/team/app.git`, 'after'], { creds: { username: 'frank', password: pat } })
    assert.notEqual(clone.code, 0)
    const audit = await wharf.api('GET', '/api/v4/audit_events?action=sso.blocked')
    assert.ok((audit.json as Array<{ actor: string }>).some((e) => e.actor === 'frank'))
  })
})
