/**
 * Starts a real Coffer server for a test: real HTTP on a random port, a real
 * SQLite file in a temp folder or a fresh PostgreSQL database, and local-disk
 * or S3 (a real s3rver) blob storage.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load-config.ts';
import { startServer, type RunningServer } from '../../src/app.ts';
import type { Clock } from '../../src/services/context.ts';
import { createTestDatabase } from './postgres.ts';
import { startS3Server } from './s3-server.ts';
import { signInSync } from './sign-in.ts';

export type DialectName = 'sqlite' | 'postgres';

export interface TestServerOptions {
  dialect?: DialectName;
  blobs?: 'local' | 's3';
  config?: Record<string, unknown>;
  clock?: Clock;
}

export interface TestServer {
  url: string;
  dataDir: string;
  server: RunningServer;
  /** Creates a user and signs it in over HTTP as a sync client. */
  user(name: string, opts?: { quotaBytes?: number; admin?: boolean; email?: string }): Promise<TestUser>;
  /** Another sync-client session (a new device) of an existing user. */
  signIn(name: string, extra?: Record<string, unknown>): Promise<TestUser>;
  close(): Promise<void>;
}

export interface TestUser {
  name: string;
  /** A sync-client access token. */
  token: string;
  userId?: string;
  sessionId?: string;
  deviceId?: string;
  refreshToken?: string;
  rootId: string;
  /** fetch() against the server with this user's token. */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  json<T = any>(path: string, init?: Omit<RequestInit, 'body'> & { body?: unknown }): Promise<{ status: number; body: T; headers: Headers }>;
}

export const TEST_PASSWORD = 'correct-horse-battery-staple';

export async function startTestServer(opts: TestServerOptions = {}): Promise<TestServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'coffer-test-'));
  const cleanups: (() => Promise<void>)[] = [() => rm(dataDir, { recursive: true, force: true })];
  const env: Record<string, unknown> = { port: 0, host: '127.0.0.1', dataDir, logLevel: 'silent', ...opts.config };
  if (opts.dialect === 'postgres') {
    const db = await createTestDatabase();
    cleanups.push(db.drop);
    env.databaseUrl = db.url;
  }
  if (opts.blobs === 's3') {
    const s3 = await startS3Server();
    cleanups.push(s3.stop);
    Object.assign(env, { s3Endpoint: s3.endpoint, s3Bucket: s3.bucket, s3Region: s3.region, s3AccessKeyId: s3.accessKeyId, s3SecretAccessKey: s3.secretAccessKey });
  }
  const config = loadConfig({ flags: env, env: {} });
  const server = await startServer(config, { clock: opts.clock });
  const url = server.url;

  async function signIn(name: string, extra: Record<string, unknown> = {}): Promise<TestUser> {
    const r = await signInSync(url, name, TEST_PASSWORD, extra);
    const row = await server.coffer.services.users.findById(r.user.id);
    return { ...clientFor(url, name, r.accessToken, row!.root_id), userId: r.user.id, sessionId: r.session.id, deviceId: r.session.deviceId, refreshToken: r.refreshToken };
  }
  async function user(name: string, u: { quotaBytes?: number; admin?: boolean; email?: string } = {}): Promise<TestUser> {
    await server.coffer.services.users.create({ username: name, password: TEST_PASSWORD, quotaBytes: u.quotaBytes, isAdmin: u.admin, email: u.email });
    return signIn(name);
  }

  return {
    url, dataDir, server, user, signIn,
    async close() {
      await server.close();
      for (const c of cleanups.reverse()) await c().catch(() => {});
    },
  };
}

export function clientFor(url: string, name: string, token: string, rootId: string): TestUser {
  const f = (path: string, init: RequestInit = {}) =>
    fetch(url + path, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.headers as Record<string, string>) } });
  return {
    name, token, rootId, fetch: f,
    async json(path, init = {}) {
      const hasBody = init.body !== undefined && typeof init.body !== 'string' && !(init.body instanceof Uint8Array);
      const res = await f(path, {
        ...init,
        body: hasBody ? JSON.stringify(init.body) : (init.body as RequestInit["body"]),
        headers: { ...(hasBody ? { 'content-type': 'application/json' } : {}), ...(init.headers as Record<string, string>) },
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
    },
  };
}

/** Runs `body` once per SQL dialect; PostgreSQL is skipped, with the reason, when absent. */
export { postgresUnavailable } from './postgres.ts';

/**
 * Resolves once the server's own first maintenance run (5 s after start, on its timer) has finished. A test that
 * moves a controlled clock waits for it first, so that run never sees the moved clock (it would, say, collect or
 * compact what the test is about to look at). Call it right after startTestServer.
 */
export function firstMaintenanceRun(ts: TestServer): Promise<void> {
  const maintenance = ts.server.coffer.services.maintenance;
  const runAll = maintenance.runAll.bind(maintenance);
  return new Promise<void>((resolve) => {
    maintenance.runAll = async (...args) => {
      // The timer calls it with no options; tests always pass some.
      if (args.length > 0) return runAll(...args);
      maintenance.runAll = runAll;
      try {
        return await runAll();
      } finally {
        resolve();
      }
    };
  });
}
