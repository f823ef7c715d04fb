// Start a Wharf server (a child process) on 127.0.0.1 for end-to-end tests.
//
// Set WHARF_E2E_TARGET=reference to run the same tests against Debian's
// reference registry (docker-registry, distribution 2.8) instead: that tells a
// server bug from a test bug. Set WHARF_E2E_KEEP=1 to keep the temp dirs.
import { spawn, type ChildProcess } from 'node:child_process';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { mkdir, mkdtemp, readFile, rm, writeFile, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const repoRoot = path.resolve(import.meta.dirname, '..', '..');
export const projectNode = path.join(repoRoot, 'node_modules', '.bin', 'node');

export interface StartWharfOptions {
  /** Reuse this data dir (default: a fresh temp dir). */
  dataDir?: string;
  /** Extra arguments after `serve ...`. */
  extraArgs?: string[];
  /** Extra environment for the server (WHARF_* from the parent never leak). */
  env?: Record<string, string>;
  /** How long to wait for /v2/ to answer; default 30 s. */
  startTimeoutMs?: number;
  /** Serve HTTPS with these PEM files (url becomes https://); `ca` verifies the start-up probe. */
  tls?: { cert: string; key: string; ca: string };
}

export interface Wharf {
  /** http://127.0.0.1:PORT (https:// with the tls option) */
  url: string;
  /** 127.0.0.1:PORT, for image references */
  host: string;
  port: number;
  dataDir: string;
  /** Temp dir holding the data dir and the server log. */
  tmpDir: string;
  logFile: string;
  pid: number;
  /** Which server this is: 'wharf' or 'reference' (docker-registry). */
  kind: 'wharf' | 'reference';
  stop(): Promise<void>;
  /** Kill the server and start it again on the same port with the same data dir. */
  restart(): Promise<void>;
  /** Last lines of the server's log. */
  logTail(lines?: number): Promise<string>;
}

export function targetKind(): 'wharf' | 'reference' {
  const t = process.env.WHARF_E2E_TARGET ?? 'wharf';
  if (t !== 'wharf' && t !== 'reference') {
    throw new Error(`WHARF_E2E_TARGET must be "wharf" or "reference", not ${JSON.stringify(t)}`);
  }
  return t;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('no port'));
        return;
      }
      const { port } = addr;
      srv.close(() => resolve(port));
    });
  });
}

function childEnv(extra: Record<string, string> | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('WHARF_')) continue;
    if (k === 'NODE_TEST_CONTEXT') continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

/** Resolves on any HTTP answer from GET /v2/; over HTTPS only if the certificate verifies with `ca`. */
async function probe(url: string, ca: string | undefined): Promise<void> {
  if (!ca) {
    const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return;
  }
  await new Promise<void>((resolve, reject) => {
    const req = httpsRequest(`${url}/v2/`, { ca, timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', resolve);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

async function tail(file: string, lines = 60): Promise<string> {
  try {
    const text = await readFile(file, 'utf8');
    return text.split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    if (!(await waitExit(child, 5000))) {
      child.kill('SIGKILL');
      await waitExit(child, 5000);
    }
  }
  live.delete(child);
}

export async function startWharf(opts: StartWharfOptions = {}): Promise<Wharf> {
  const kind = targetKind();
  const tmpDir = await mkdtemp(path.join(tmpdir(), 'wharf-e2e-'));
  const dataDir = opts.dataDir ?? path.join(tmpDir, 'data');
  await mkdir(dataDir, { recursive: true });
  const logFile = path.join(tmpDir, 'server.log');
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const url = `${opts.tls ? 'https' : 'http'}://${host}`;
  const ca = opts.tls ? await readFile(opts.tls.ca, 'utf8') : undefined;
  const startTimeoutMs = opts.startTimeoutMs ?? 30_000;

  let cmd: string;
  let args: string[];
  if (kind === 'reference') {
    const config = path.join(tmpDir, 'registry.yml');
    await writeFile(
      config,
      [
        'version: 0.1',
        'log: { level: info }',
        `storage: { filesystem: { rootdirectory: ${JSON.stringify(dataDir)} }, delete: { enabled: true } }`,
        `http: { addr: "${host}"${opts.tls ? `, tls: { certificate: ${JSON.stringify(opts.tls.cert)}, key: ${JSON.stringify(opts.tls.key)} }` : ''} }`,
        '',
      ].join('\n'),
    );
    cmd = 'docker-registry';
    args = ['serve', config];
  } else {
    cmd = projectNode;
    args = [
      path.join('src', 'cli', 'main.ts'),
      'serve',
      '--listen',
      host,
      '--data',
      dataDir,
      '--public-url',
      url,
      ...(opts.tls ? ['--tls-cert', opts.tls.cert, '--tls-key', opts.tls.key] : []),
      ...(opts.extraArgs ?? []),
    ];
  }

  let child: ChildProcess;

  const launch = async (): Promise<void> => {
    const log = await open(logFile, 'a');
    await log.write(`\n=== ${new Date().toISOString()} ${cmd} ${args.join(' ')}\n`);
    try {
      child = spawn(cmd, args, {
        cwd: repoRoot,
        env: childEnv(opts.env),
        stdio: ['ignore', log.fd, log.fd],
      });
    } finally {
      await log.close();
    }
    live.add(child);
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    const deadline = Date.now() + startTimeoutMs;
    for (;;) {
      const failure = await Promise.race([
        spawnError,
        new Promise<null>((r) => setTimeout(() => r(null), 100)),
      ]);
      if (failure) throw new Error(`cannot start ${cmd}: ${failure.message}`);
      if (child.exitCode !== null || child.signalCode !== null) {
        live.delete(child);
        throw new Error(
          `server exited during startup (code ${child.exitCode}, signal ${child.signalCode}); log ${logFile}:\n${await tail(logFile)}`,
        );
      }
      try {
        await probe(url, ca);
        return;
      } catch {
        /* not listening yet */
      }
      if (Date.now() > deadline) {
        await kill(child);
        throw new Error(
          `server did not answer GET ${url}/v2/ within ${startTimeoutMs} ms; log ${logFile}:\n${await tail(logFile)}`,
        );
      }
    }
  };

  await launch();

  const wharf: Wharf = {
    url,
    host,
    port,
    dataDir,
    tmpDir,
    logFile,
    kind,
    get pid() {
      return child.pid ?? -1;
    },
    async stop() {
      await kill(child);
      if (process.env.WHARF_E2E_KEEP !== '1') {
        await rm(tmpDir, { recursive: true, force: true });
      } else {
        process.stderr.write(`# WHARF_E2E_KEEP=1: kept ${tmpDir}\n`);
      }
    },
    async restart() {
      await kill(child);
      await launch();
    },
    logTail(lines?: number) {
      return tail(logFile, lines);
    },
  };
  return wharf;
}
