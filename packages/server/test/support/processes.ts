/**
 * Real `coffer` processes for end-to-end tests: the CLI run to completion,
 * and the server spawned on a random port (port 0; the URL is read from its
 * 'coffer listening' log line). Every wait is bounded by a timeout, every
 * process is killed by its own pid when a test is done with it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { request, type IncomingMessage } from 'node:http';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

/**
 * The parent's environment minus anything that would change how a child behaves — the desktop's
 * D-Bus session included, so a `coffer login` never reaches the user's own OS keyring (a test that
 * wants a keyring passes one: packages/client/test/support/keyring-session.ts).
 */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('COFFER_') || k.startsWith('NODE_TEST') || k === 'NODE_OPTIONS' || k === 'DBUS_SESSION_BUS_ADDRESS') continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

export interface CliResult { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

/** Runs `coffer <args>` to completion with stdin not a terminal. */
export async function runCli(args: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv(opts.env) });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  try {
    const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
    if (signal === 'SIGKILL') throw new Error(`coffer ${args.join(' ')} did not finish within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`);
    return { code, signal, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `coffer <args>` and fails unless it exits 0. */
export async function cliOk(args: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliResult> {
  const r = await runCli(args, opts);
  if (r.code !== 0) throw new Error(`coffer ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

/** `--data`, and `--database-url` when given: where a test's data lives. */
export function storageArgs(dataDir: string, databaseUrl?: string): string[] {
  return ['--data', dataDir, ...(databaseUrl ? ['--database-url', databaseUrl] : [])];
}

export interface ServerProcess {
  url: string;
  pid: number;
  child: ChildProcess;
  /** Everything the server printed so far. */
  output(): string;
  /** Resolves with how the process ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Waits (bounded) for the process to end; SIGKILLs it and throws past the timeout. */
  waitExit(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL if still running, then wait for it. Safe to call twice. */
  kill(): Promise<void>;
}

/** Spawns `coffer server --port 0` and waits for its 'coffer listening' line. */
export async function spawnServer(storage: string[], opts: { args?: string[]; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<ServerProcess> {
  const child = spawn(process.execPath, [CLI, 'server', '--port', '0', '--host', '127.0.0.1', '--log-level', 'info', ...storage, ...(opts.args ?? [])],
    { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv(opts.env) });
  let out = '';
  let pending = '';
  let resolveUrl: (url: string) => void;
  const urlFound = new Promise<string>((res) => { resolveUrl = res; });
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    pending += d;
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      try {
        const entry = JSON.parse(line) as { msg?: string; url?: string };
        if (entry.msg === 'coffer listening' && entry.url) resolveUrl(entry.url);
      } catch { /* not a log line */ }
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
    child.on('exit', (code, signal) => res({ code, signal }));
  });
  const timeoutMs = opts.timeoutMs ?? 30_000;
  let timer: NodeJS.Timeout | undefined;
  const started = await Promise.race([
    urlFound,
    exited.then((e) => new Error(`coffer server exited (${e.code ?? e.signal}) before listening:\n${out}`)),
    new Promise<Error>((res) => { timer = setTimeout(() => res(new Error(`coffer server did not start within ${timeoutMs} ms:\n${out}`)), timeoutMs); }),
  ]);
  clearTimeout(timer);
  if (started instanceof Error) {
    child.kill('SIGKILL');
    await exited;
    throw started;
  }
  const waitExit = async (ms = 30_000) => {
    let t: NodeJS.Timeout | undefined;
    const r = await Promise.race([exited, new Promise<null>((res) => { t = setTimeout(() => res(null), ms); })]);
    clearTimeout(t);
    if (r) return r;
    child.kill('SIGKILL');
    await exited;
    throw new Error(`coffer server (pid ${child.pid}) did not exit within ${ms} ms:\n${out}`);
  };
  return {
    url: started, pid: child.pid!, child, exited, output: () => out, waitExit,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

export { getToken } from './sign-in.ts';

export interface HttpResult { status: number; body: string }

/**
 * An upload through node:http on a connection of its own, body written by
 * the caller: `write` respects backpressure, `end` finishes the body, `cut`
 * destroys the socket. `response` settles when the server answers or the
 * connection dies (then with the error).
 */
export interface ManualUpload {
  write(data: Uint8Array): Promise<void>;
  end(): void;
  cut(): void;
  response: Promise<HttpResult>;
}

export function startUpload(url: string, token: string, path: string, contentLength: number, headers: Record<string, string> = {}): ManualUpload {
  const req = request(`${url}/api/v1/content/${path.split('/').map(encodeURIComponent).join('/')}`, {
    method: 'PUT', agent: false,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream', 'content-length': String(contentLength), ...headers },
  });
  const response = new Promise<HttpResult>((resolve, reject) => {
    let answered = false;
    req.on('response', (res: IncomingMessage) => {
      answered = true;
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
      res.on('close', () => reject(new Error('connection closed in the middle of the response')));
    });
    req.on('error', reject);
    // Settles even if the connection ends without an 'error' (a no-op once settled).
    req.on('close', () => { if (!answered) reject(new Error('connection closed without a response')); });
  });
  response.catch(() => {}); // callers that cut the connection may never look
  return {
    async write(data) {
      if (req.destroyed) throw new Error('upload connection closed');
      if (req.write(data)) return;
      await new Promise<void>((resolve) => {
        const done = () => {
          req.off('drain', done);
          req.off('close', done);
          resolve();
        };
        req.on('drain', done);
        req.on('close', done);
      });
    },
    end() { req.end(); },
    cut() { req.destroy(); },
    response,
  };
}

/** Polls `check` every `intervalMs` until it returns true; throws after `timeoutMs`. */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 15_000, intervalMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** The value of `coffer_uploads_in_progress` from /metrics. */
export async function uploadsInProgress(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
  const m = /^coffer_uploads_in_progress (\d+)/m.exec(text);
  return m ? Number(m[1]) : NaN;
}
