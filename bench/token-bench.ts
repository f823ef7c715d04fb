// The token endpoint's cost per credential kind, side by side in one run against one server:
// GET /jwt/auth with Basic password, with Basic PAT, and POST /jwt/auth with a refresh token
// (OAuth2, as containerd uses it), plus anonymous as the floor. Reports requests/s and the
// server's CPU per request (utime+stime of the server process from /proc/PID/stat, all threads)
// at a fixed concurrency, and the first password request alone (the one scrypt).
//
//   node_modules/.bin/node bench/token-bench.ts            (REQUESTS=2000 CONCURRENCY=8 ROUNDS=3)
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

const REQUESTS = Number(process.env.REQUESTS ?? 2000)
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 8)
const ROUNDS = Number(process.env.ROUNDS ?? 3)
const PASSWORD = 'bench-root-password'
const root = join(import.meta.dirname, '..')

const ticks = 100 // USER_HZ
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(f[11]) + Number(f[12])) / ticks
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo
      s.close(() => resolve(port))
    })
  })
}

const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY })
function request(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: init.method ?? 'GET', headers: init.headers, agent }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(init.body)
  })
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'wharf-token-bench-'))
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const server = spawn(
    process.execPath,
    [
      join(root, 'src/cli/main.ts'),
      'serve',
      '--listen',
      `127.0.0.1:${port}`,
      '--data',
      join(work, 'data'),
      '--log-level',
      'warn',
      '--max-connections-per-address',
      '0',
    ],
    {
      env: { ...process.env, WHARF_ROOT_PASSWORD: PASSWORD },
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  )
  try {
    for (let i = 0; ; i++) {
      try {
        if ((await request(`${base}/v2/`)).status === 401) break
      } catch {
        if (i > 300) throw new Error('the server did not start')
      }
      await sleep(100)
    }
    const basic = (user: string, secret: string) => `Basic ${Buffer.from(`${user}:${secret}`).toString('base64')}`
    const oauth = JSON.parse(
      (
        await request(`${base}/oauth/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: `grant_type=password&username=root&password=${PASSWORD}`,
        })
      ).body,
    ) as { access_token: string }
    const pat = JSON.parse(
      (
        await request(`${base}/api/v4/user/personal_access_tokens`, {
          method: 'POST',
          headers: { authorization: `Bearer ${oauth.access_token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ name: 'bench', scopes: ['read_registry', 'write_registry'] }),
        })
      ).body,
    ) as { token: string }
    // A second account whose password no request has checked yet (root's was, by the OAuth login).
    const userPassword = 'bench-user-password'
    const created = await request(`${base}/api/v4/users`, {
      method: 'POST',
      headers: { authorization: `Bearer ${oauth.access_token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'benchuser', name: 'Bench', password: userPassword, admin: true }),
    })
    if (created.status !== 201) throw new Error(`cannot create the bench user: ${created.body}`)
    const form = (o: Record<string, string>) => new URLSearchParams(o).toString()
    const refresh = JSON.parse(
      (
        await request(`${base}/jwt/auth`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: form({
            grant_type: 'password',
            username: 'root',
            password: PASSWORD,
            access_type: 'offline',
            service: 'container_registry',
            scope: 'repository:bench/app:pull',
          }),
        })
      ).body,
    ) as { refresh_token: string }
    const scope = 'service=container_registry&scope=repository:bench/app:pull,push'
    const modes: Record<string, () => Promise<{ status: number }>> = {
      anonymous: () => request(`${base}/jwt/auth?${scope}`),
      'Basic password': () => request(`${base}/jwt/auth?${scope}`, { headers: { authorization: basic('benchuser', userPassword) } }),
      'Basic PAT': () => request(`${base}/jwt/auth?${scope}`, { headers: { authorization: basic('root', pat.token) } }),
      'refresh token (POST)': () =>
        request(`${base}/jwt/auth`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: form({
            grant_type: 'refresh_token',
            refresh_token: refresh.refresh_token,
            service: 'container_registry',
            scope: 'repository:bench/app:pull,push',
          }),
        }),
    }
    const pid = server.pid!
    console.log(
      `# token-bench: ${REQUESTS} requests per mode at concurrency ${CONCURRENCY}, ${ROUNDS} rounds; ${cpus().length} cpus, node ${process.version}, load ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    )
    // The first password request of a credential pays the scrypt; later ones reuse the check.
    const c0 = cpuSeconds(pid)
    const t0 = performance.now()
    const first = await request(`${base}/jwt/auth?${scope}`, { headers: { authorization: basic('benchuser', userPassword) } })
    console.log(
      `first password request (status ${first.status}; the scrypt every request paid before the check was reused): ${(performance.now() - t0).toFixed(1)} ms wall; server CPU ${((cpuSeconds(pid) - c0) * 1000).toFixed(0)} ms (at /proc's 10 ms resolution)`,
    )
    const results = new Map<string, Array<{ rps: number; cpuMs: number }>>()
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, call] of Object.entries(modes)) {
        let next = 0
        let bad = 0
        const cpu0 = cpuSeconds(pid)
        const start = performance.now()
        await Promise.all(
          Array.from({ length: CONCURRENCY }, async () => {
            while (next < REQUESTS) {
              next++
              if ((await call()).status !== 200) bad++
            }
          }),
        )
        const secs = (performance.now() - start) / 1000
        const cpu = cpuSeconds(pid) - cpu0
        if (bad) throw new Error(`${name}: ${bad} requests failed`)
        const list = results.get(name) ?? []
        list.push({ rps: REQUESTS / secs, cpuMs: (cpu * 1000) / REQUESTS })
        results.set(name, list)
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
    const pat0 = median(results.get('Basic PAT')!.map((r) => r.cpuMs))
    console.log(
      '\n| credential | requests/s (median) | server CPU per request (median) | CPU vs Basic PAT | rounds (req/s; CPU ms) |\n|---|---|---|---|---|',
    )
    for (const [name, list] of results) {
      const cpu = median(list.map((r) => r.cpuMs))
      console.log(
        `| ${name} | ${median(list.map((r) => r.rps)).toFixed(0)} | ${cpu.toFixed(3)} ms | ${(cpu / pat0).toFixed(2)} | ${list.map((r) => `${r.rps.toFixed(0)}; ${r.cpuMs.toFixed(3)}`).join(' / ')} |`,
      )
    }
  } finally {
    server.kill('SIGTERM')
    await new Promise((r) => server.once('exit', r))
    agent.destroy()
    await rm(work, { recursive: true, force: true })
  }
}

await main()
