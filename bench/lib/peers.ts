/**
 * The servers under test, each started fresh by us on a free loopback port
 * with its own data folder, and stopped by the PID we started:
 * - coffer: `node packages/server/src/cli/main.ts server` (REST API, bearer token)
 * - rclone: `rclone serve webdav ROOT` (Debian's rclone, basic auth)
 * - nginx:  a private config (`nginx -c FILE -p DIR -e LOG`), one process
 *           (`master_process off`, `daemon off`), sendfile on, static files only.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, run, startOwned, waitForHttp, type Owned } from './proc.ts';

export type PeerName = 'coffer' | 'rclone' | 'nginx';

export interface Server {
  readonly name: PeerName;
  /** The process whose CPU and memory are reported. */
  readonly pid: number;
  /** Where it keeps (or, for nginx, serves) its files. */
  readonly dataDir: string;
  /** URL of a file or folder at `path` (e.g. "small/f00001"). */
  url(path: string): string;
  /** Authentication as curl config-file lines (`header = ...`, `user = ...`). */
  readonly curlAuth: string[];
  /** Authentication as HTTP request headers (for Node's own client). */
  readonly authHeaders: Record<string, string>;
  /** Creates a folder (its parent must exist). */
  mkdir(path: string): Promise<void>;
  stop(): Promise<void>;
  logTail(): string;
}

const STARTUP_TIMEOUT_MS = 30_000;
export const USER = 'alice';
export const PASSWORD = 'correct-horse-battery';

function pathUrl(base: string, path: string): string {
  return base + path.split('/').map(encodeURIComponent).join('/');
}

async function expectStatus(res: Response, ok: readonly number[], what: string): Promise<string> {
  const body = await res.text();
  if (!ok.includes(res.status)) throw new Error(`${what}: HTTP ${res.status} ${body.slice(0, 500)}`);
  return body;
}

// ---- Coffer -----------------------------------------------------------------

export const COFFER_CLI = 'packages/server/src/cli/main.ts';

/** Creates the user with the admin CLI, starts the server, and signs in for a token. */
export async function startCoffer(repoRoot: string, dataDir: string, logFile: string): Promise<Server> {
  mkdirSync(dataDir, { recursive: true });
  const cli = join(repoRoot, COFFER_CLI);
  const node = process.execPath;
  const created = await run(node, [cli, 'admin', 'create-user', USER, '--password', PASSWORD, '--data', dataDir], {
    timeoutMs: 60_000,
    cwd: repoRoot,
  });
  if (created.code !== 0) throw new Error(`coffer admin create-user exited ${created.code}:\n${created.stdout}${created.stderr}`.trim());

  const port = await freePort();
  // bin/coffer is how users start the server (it sets UV_USE_IO_URING=1, see docs/architecture.md); exec keeps the PID.
  const owned = startOwned(join(repoRoot, 'bin/coffer'), ['server', '--port', String(port), '--host', '127.0.0.1', '--data', dataDir, '--access-token-seconds', '86400'], logFile);
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(`${base}/healthz`, owned, STARTUP_TIMEOUT_MS);
    const res = await fetch(`${base}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ login: USER, password: PASSWORD, client: 'sync', deviceName: 'bench' }),
      signal: AbortSignal.timeout(10_000),
    });
    const body = await expectStatus(res, [200], 'POST /api/v1/auth/login');
    const token = (JSON.parse(body) as { accessToken?: unknown }).accessToken;
    if (typeof token !== 'string' || !token) throw new Error(`POST /api/v1/auth/login: no "accessToken" in ${body.slice(0, 300)}`);
    const authHeaders = { authorization: `Bearer ${token}` };
    return {
      name: 'coffer',
      pid: owned.pid,
      dataDir,
      url: (path) => pathUrl(`${base}/api/v1/content/`, path),
      curlAuth: [`header = "Authorization: Bearer ${token}"`],
      authHeaders,
      async mkdir(path) {
        const r = await fetch(`${base}/api/v1/folders`, {
          method: 'POST',
          headers: { ...authHeaders, 'content-type': 'application/json' },
          body: JSON.stringify({ path }),
          signal: AbortSignal.timeout(10_000),
        });
        await expectStatus(r, [201], `POST /api/v1/folders {"path":"${path}"}`);
      },
      stop: () => owned.stop(),
      logTail: () => owned.logTail(),
    };
  } catch (e) {
    await owned.stop();
    throw e;
  }
}

// ---- rclone serve webdav ----------------------------------------------------

export async function startRclone(root: string, logFile: string): Promise<Server> {
  mkdirSync(root, { recursive: true });
  const port = await freePort();
  const owned = startOwned(
    'rclone',
    ['serve', 'webdav', root, '--addr', `127.0.0.1:${port}`, '--user', USER, '--pass', PASSWORD, '--config', '/dev/null'],
    logFile,
  );
  const base = `http://127.0.0.1:${port}/`;
  const basic = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
  const authHeaders = { authorization: basic };
  try {
    // Unauthenticated probe: 401 means it is up.
    await waitForHttp(base, owned, STARTUP_TIMEOUT_MS, (s) => s === 401 || s === 200);
  } catch (e) {
    await owned.stop();
    throw e;
  }
  return {
    name: 'rclone',
    pid: owned.pid,
    dataDir: root,
    url: (path) => pathUrl(base, path),
    curlAuth: [`user = "${USER}:${PASSWORD}"`],
    authHeaders,
    async mkdir(path) {
      const r = await fetch(pathUrl(base, path), { method: 'MKCOL', headers: authHeaders, signal: AbortSignal.timeout(10_000) });
      await expectStatus(r, [201], `MKCOL /${path}`);
    },
    stop: () => owned.stop(),
    logTail: () => owned.logTail(),
  };
}

// ---- nginx ------------------------------------------------------------------

/** nginx serving `root` read-only with sendfile; `dir` holds its config, logs and temp files. */
export async function startNginx(root: string, dir: string): Promise<Server> {
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  const t = (name: string) => join(dir, 'tmp', name);
  writeFileSync(
    conf,
    `daemon off;
master_process off;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 256; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  client_body_temp_path ${t('body')};
  proxy_temp_path ${t('proxy')};
  fastcgi_temp_path ${t('fastcgi')};
  uwsgi_temp_path ${t('uwsgi')};
  scgi_temp_path ${t('scgi')};
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port};
    root ${root};
    location / { }
  }
}
`,
  );
  const owned = startOwned('nginx', ['-c', conf, '-p', dir, '-e', join(dir, 'error.log')], join(dir, 'stdout.log'));
  const base = `http://127.0.0.1:${port}/`;
  try {
    await waitForHttp(base, owned, STARTUP_TIMEOUT_MS, (s) => s > 0);
  } catch (e) {
    await owned.stop();
    throw new Error(`${(e as Error).message}\n${owned.logTail()}`);
  }
  return {
    name: 'nginx',
    pid: owned.pid,
    dataDir: root,
    url: (path) => pathUrl(base, path),
    curlAuth: [],
    authHeaders: {},
    async mkdir() {
      throw new Error('nginx is read-only here');
    },
    stop: () => owned.stop(),
    logTail: () => owned.logTail(),
  };
}
