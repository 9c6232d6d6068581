/**
 * Authorization over the whole API, driven by the served OpenAPI document:
 * every documented route must have a row in ROUTES below, and for each row
 *   - without credentials, with malformed or mixed-up credentials (a refresh
 *     token as an access token, a cookie secret as a bearer token, another
 *     user's app password…), with a signed-out session, an expired access
 *     token, a browser session that idled out, or a sign-in still waiting for
 *     its second factor, it answers 401 UNAUTHENTICATED before looking at any
 *     id (public routes excepted, which answer the same with or without any
 *     of these);
 *   - a browser session without the right X-CSRF-Token gets 403 CSRF_FAILED
 *     on every state-changing route;
 *   - a session restricted by a pending wipe, or by a server that requires
 *     2FA, gets 403 DEVICE_WIPE_REQUESTED / MFA_ENROLLMENT_REQUIRED except on
 *     the routes the row lists in `allow`;
 *   - as bob with alice's ids it answers 404 NOT_FOUND, exactly as for an id
 *     that does not exist, and nothing alice owns (files, devices, sessions,
 *     IP addresses, tokens) shows up in any response.
 * A new route without a row fails the first test: add it to ROUTES.
 * Runs on SQLite and on PostgreSQL (skipped, with the reason, when absent).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Secret, TOTP } from 'otpauth';
import { postgresUnavailable, startTestServer, TEST_PASSWORD, type DialectName, type TestServer } from '../support/test-server.ts';
import { csrfTokenFor } from '../../src/services/accounts/secrets.ts';

/** Alice's data that bob must never see. */
interface Ids {
  rootId: string;
  folderId: string;
  fileId: string;
  /** The first (no longer current) version of the file. */
  versionId: string;
  /** A file in alice's recycle bin. */
  trashedId: string;
  /** The file's path from alice's root, URL-encoded per segment. */
  filePath: string;
  bobRootId: string;
  bobFileId: string;
  /** A change-feed cursor of alice's drive. */
  aliceCursor: string;
  /** An open upload session (chunk protocol) of alice's. */
  uploadId: string;
  /** Alice's main device (a sync client) and its session. */
  deviceId: string;
  sessionId: string;
}

interface Call {
  path: string;
  /** A JSON body. */
  json?: unknown;
  /** Raw upload bytes. */
  bytes?: string;
  /** The call revokes the session it carries: send it with a throwaway one. */
  revokesToken?: boolean;
  /** The answer is a stream that stays open: read up to the first event, then hang up. */
  stream?: boolean;
}

type Restriction = 'wipe' | 'mfa-enrollment';

interface RouteSpec {
  /** Reachable without credentials (the document marks it with `security: []`). */
  public?: boolean;
  /** The request: alice's ids wherever the route takes one. */
  call(ids: Ids): Call;
  /** What bob gets for that request: 404 where it names alice's data, else his own answer. */
  bob: number;
  /** The error code of bob's answer when it is an error (401 and 404 default to UNAUTHENTICATED and NOT_FOUND). */
  bobCode?: string;
  /** Public routes: the answer to an anonymous call (and to one with any credentials at all). */
  anonymous?: { status: number; code?: string };
  /** Restricted sessions that may still use the route, with the status the row's call then gets. */
  allow?: Partial<Record<Restriction, Expected>>;
}

const FOLDER_NAME = 'Alice Secret Folder';
const FILE_NAME = 'alice-secret-plan.txt';
const TRASHED_NAME = 'alice-trashed-diary.txt';
const CONTENT_V1 = 'ALICE-SECRET-CONTENT-version-one';
const CONTENT_V2 = 'ALICE-SECRET-CONTENT-version-two';
const TRASHED_CONTENT = 'ALICE-TRASHED-CONTENT';
const BOB_CONTENT = 'bob-own-content';
/** Where alice and bob connect from (the server trusts X-Forwarded-For in this test). */
const ALICE_IP = '203.0.113.77';
const BOB_IP = '198.51.100.23';
const ALICE_UA = 'AliceSecretBrowser/7.1 (AliceOS)';
const ALICE_EMAIL = 'alice.secret@example.org';
const ALICE_DEVICE = 'Alice Secret Laptop';
const ALICE_PHONE = 'Alice Secret Phone';
const ALICE_TABLET = 'Alice Secret Tablet';
const ALICE_TOOL = 'Alice Secret Backup Tool';
/** Policy the server runs with here (also the defaults). */
const ACCESS_TOKEN_SECONDS = 900;
const SESSION_IDLE_MINUTES = 30;

let nonce = 0;
/** A login nobody has: wrong-password attempts on it throttle nobody this test needs. */
const nobody = () => `nobody-${++nonce}`;

/**
 * One row per documented route, keyed `METHOD /path` exactly as in the
 * OpenAPI document. Adding a route to the server without adding it here fails
 * 'every documented route has a row'.
 */
const ROUTES: Record<string, RouteSpec> = {
  // Public: they answer the same whatever credentials come with them.
  'POST /api/v1/auth/signup': { public: true, anonymous: { status: 403, code: 'SIGNUP_DISABLED' }, bob: 403, bobCode: 'SIGNUP_DISABLED', call: () => ({ path: '/api/v1/auth/signup', json: { username: nobody(), password: 'a-long-enough-password-42' } }) },
  'POST /api/v1/auth/login': { public: true, anonymous: { status: 401, code: 'WRONG_CREDENTIALS' }, bob: 401, bobCode: 'WRONG_CREDENTIALS', call: () => ({ path: '/api/v1/auth/login', json: { login: nobody(), password: 'not-the-password' } }) },
  'POST /api/v1/auth/login/2fa': { public: true, anonymous: { status: 401, code: 'UNAUTHENTICATED' }, bob: 401, call: () => ({ path: '/api/v1/auth/login/2fa', json: { challenge: 'cfc_not-a-challenge', code: '123456' } }) },
  'POST /api/v1/auth/refresh': { public: true, anonymous: { status: 401, code: 'UNAUTHENTICATED' }, bob: 401, call: () => ({ path: '/api/v1/auth/refresh', json: { refreshToken: 'cfr_not-a-refresh-token' } }) },
  'POST /api/v1/auth/password/forgot': { public: true, anonymous: { status: 202 }, bob: 202, call: () => ({ path: '/api/v1/auth/password/forgot', json: { login: `${nobody()}@example.com` } }) },
  'POST /api/v1/auth/password/reset': { public: true, anonymous: { status: 400, code: 'INVALID_RESET_TOKEN' }, bob: 400, bobCode: 'INVALID_RESET_TOKEN', call: () => ({ path: '/api/v1/auth/password/reset', json: { token: 'cfw_not-a-reset-token', password: 'a-long-enough-password-42' } }) },
  // Device login: anyone may start a request and poll for it; only a signed-in (and unrestricted) session sees or decides one.
  'POST /api/v1/auth/device': { public: true, anonymous: { status: 200 }, bob: 200, call: () => ({ path: '/api/v1/auth/device', json: { deviceName: `matrix device ${++nonce}` } }) },
  'POST /api/v1/auth/device/token': { public: true, anonymous: { status: 400, code: 'INVALID_DEVICE_CODE' }, bob: 400, bobCode: 'INVALID_DEVICE_CODE', call: () => ({ path: '/api/v1/auth/device/token', json: { deviceCode: 'cfd_not-a-device-code' } }) },

  'POST /api/v1/auth/logout': { bob: 204, allow: { wipe: { status: 204 }, 'mfa-enrollment': { status: 204 } }, call: () => ({ path: '/api/v1/auth/logout', revokesToken: true }) },
  'GET /api/v1/auth/session': { bob: 200, allow: { wipe: { status: 200 }, 'mfa-enrollment': { status: 200 } }, call: () => ({ path: '/api/v1/auth/session' }) },
  'GET /api/v1/me': { bob: 200, allow: { 'mfa-enrollment': { status: 200 } }, call: () => ({ path: '/api/v1/me' }) },
  // A user code nobody was given (codes belong to no one until approved: whoever holds one may see and decide it).
  'GET /api/v1/auth/device/pending': { bob: 404, bobCode: 'UNKNOWN_USER_CODE', call: () => ({ path: '/api/v1/auth/device/pending?userCode=BBBB-BBBB' }) },
  'POST /api/v1/auth/device/approve': { bob: 404, bobCode: 'UNKNOWN_USER_CODE', call: () => ({ path: '/api/v1/auth/device/approve', json: { userCode: 'BBBB-BBBB', approve: true } }) },

  // The current password is right, the new one too short: nothing changes, and no failure is counted.
  'POST /api/v1/account/password': { bob: 400, bobCode: 'WEAK_PASSWORD', call: () => ({ path: '/api/v1/account/password', json: { currentPassword: TEST_PASSWORD, newPassword: 'short' } }) },
  'GET /api/v1/account/2fa': { bob: 200, allow: { 'mfa-enrollment': { status: 200 } }, call: () => ({ path: '/api/v1/account/2fa' }) },
  'POST /api/v1/account/2fa/setup': { bob: 200, allow: { 'mfa-enrollment': { status: 200 } }, call: () => ({ path: '/api/v1/account/2fa/setup' }) },
  // After the row above, so a setup is pending: the code is refused.
  'POST /api/v1/account/2fa/enable': { bob: 401, bobCode: 'WRONG_MFA_CODE', allow: { 'mfa-enrollment': { status: 401, code: 'WRONG_MFA_CODE' } }, call: () => ({ path: '/api/v1/account/2fa/enable', json: { code: 'not-a-code' } }) },
  'POST /api/v1/account/2fa/disable': { bob: 409, bobCode: 'MFA_NOT_ENABLED', call: () => ({ path: '/api/v1/account/2fa/disable', json: { code: '000000' } }) },
  'POST /api/v1/account/2fa/recovery-codes': { bob: 409, bobCode: 'MFA_NOT_ENABLED', call: () => ({ path: '/api/v1/account/2fa/recovery-codes', json: { code: '000000' } }) },
  'GET /api/v1/account/audit': { bob: 200, call: () => ({ path: '/api/v1/account/audit' }) },
  'GET /api/v1/admin/users/{username}/audit': { bob: 403, bobCode: 'FORBIDDEN', call: () => ({ path: '/api/v1/admin/users/alice/audit' }) },

  'GET /api/v1/devices': { bob: 200, call: () => ({ path: '/api/v1/devices' }) },
  'DELETE /api/v1/devices/{id}': { bob: 404, call: (i) => ({ path: `/api/v1/devices/${i.deviceId}` }) },
  'POST /api/v1/devices/{id}/wipe': { bob: 404, call: (i) => ({ path: `/api/v1/devices/${i.deviceId}/wipe` }) },
  'DELETE /api/v1/sessions/{id}': { bob: 404, call: (i) => ({ path: `/api/v1/sessions/${i.sessionId}` }) },
  // Signs out the caller's other sessions: bob's own, never alice's.
  'POST /api/v1/sessions/sign-out-others': { bob: 200, call: () => ({ path: '/api/v1/sessions/sign-out-others' }) },
  'POST /api/v1/app-passwords': { bob: 201, call: () => ({ path: '/api/v1/app-passwords', json: { name: 'planted tool' } }) },
  'PUT /api/v1/device/pending-changes': { bob: 204, call: () => ({ path: '/api/v1/device/pending-changes', json: { pendingChanges: 3 } }) },
  'GET /api/v1/device/wipe': { bob: 200, allow: { wipe: { status: 200 } }, call: () => ({ path: '/api/v1/device/wipe' }) },
  // Ends a wiped device's credentials: the wipe test calls it last.
  'POST /api/v1/device/wipe/confirm': { bob: 400, bobCode: 'VALIDATION_FAILED', allow: { wipe: { status: 204 } }, call: () => ({ path: '/api/v1/device/wipe/confirm', json: { removedCount: 0, kept: [] } }) },

  'GET /api/v1/items/root': { bob: 200, call: () => ({ path: '/api/v1/items/root' }) },
  'GET /api/v1/items/by-path': { bob: 404, call: (i) => ({ path: `/api/v1/items/by-path?path=${encodeURIComponent(decodeURIComponent(i.filePath))}` }) },
  'GET /api/v1/items/{id}': { bob: 404, call: (i) => ({ path: `/api/v1/items/${i.fileId}` }) },
  'PATCH /api/v1/items/{id}': { bob: 404, call: (i) => ({ path: `/api/v1/items/${i.fileId}`, json: { name: 'stolen.txt' } }) },
  'DELETE /api/v1/items/{id}': { bob: 404, call: (i) => ({ path: `/api/v1/items/${i.fileId}` }) },
  'GET /api/v1/items/{id}/children': { bob: 404, call: (i) => ({ path: `/api/v1/items/${i.folderId}/children` }) },
  'POST /api/v1/folders': { bob: 404, call: (i) => ({ path: '/api/v1/folders', json: { parentId: i.folderId, name: 'planted' } }) },
  'POST /api/v1/items/{id}/copy': { bob: 404, call: (i) => ({ path: `/api/v1/items/${i.fileId}/copy`, json: { parentId: i.bobRootId } }) },
  'GET /api/v1/drive': { bob: 200, call: () => ({ path: '/api/v1/drive' }) },
  'POST /api/v1/uploads': { bob: 201, call: () => ({ path: '/api/v1/uploads' }) },
  'DELETE /api/v1/uploads/{id}': { bob: 404, call: (i) => ({ path: `/api/v1/uploads/${i.uploadId}` }) },
  'POST /api/v1/uploads/{id}/missing': { bob: 404, call: (i) => ({ path: `/api/v1/uploads/${i.uploadId}/missing`, json: { hashes: ['0'.repeat(64)] } }) },
  'PUT /api/v1/uploads/{id}/chunks': { bob: 404, call: (i) => ({ path: `/api/v1/uploads/${i.uploadId}/chunks`, bytes: '\u0000\u0000\u0000\u0001x' }) },
  'POST /api/v1/uploads/{id}/commit': { bob: 404, call: (i) => ({ path: `/api/v1/uploads/${i.uploadId}/commit`, json: { parentId: i.bobRootId, name: 'planted.txt', chunks: [], size: 0 } }) },
  'POST /api/v1/uploads/{id}/commit-batch': { bob: 404, call: (i) => ({ path: `/api/v1/uploads/${i.uploadId}/commit-batch`, json: { files: [{ parentId: i.bobRootId, name: 'planted.txt', chunks: [], size: 0 }] } }) },
  // Another drive's cursor cannot be continued: bob is told to resync his own drive, and learns nothing of alice's.
  'GET /api/v1/changes': { bob: 410, bobCode: 'RESYNC_REQUIRED', call: (i) => ({ path: `/api/v1/changes?cursor=${i.aliceCursor}` }) },
  // Push names no id: bob gets his own drive's stream.
  'GET /api/v1/changes/stream': { bob: 200, call: () => ({ path: '/api/v1/changes/stream', stream: true }) },
  'GET /api/v1/trash': { bob: 200, call: () => ({ path: '/api/v1/trash' }) },
  'DELETE /api/v1/trash': { bob: 200, call: () => ({ path: '/api/v1/trash' }) },
  'POST /api/v1/trash/{id}/restore': { bob: 404, call: (i) => ({ path: `/api/v1/trash/${i.trashedId}/restore` }) },
  'DELETE /api/v1/trash/{id}': { bob: 404, call: (i) => ({ path: `/api/v1/trash/${i.trashedId}` }) },
  'GET /api/v1/items/{id}/versions': { bob: 404, call: (i) => ({ path: `/api/v1/items/${i.fileId}/versions` }) },
  'GET /api/v1/items/{id}/versions/{versionId}/content': { bob: 404, call: (i) => ({ path: `/api/v1/items/${i.fileId}/versions/${i.versionId}/content` }) },
  'POST /api/v1/items/{id}/versions/{versionId}/restore': { bob: 404, call: (i) => ({ path: `/api/v1/items/${i.fileId}/versions/${i.versionId}/restore` }) },
  'PUT /api/v1/content/{*}': { bob: 404, call: (i) => ({ path: `/api/v1/content/${i.filePath}`, bytes: 'overwritten by bob' }) },
  'GET /api/v1/content/{*}': { bob: 404, call: (i) => ({ path: `/api/v1/content/${i.filePath}` }) },
  'PUT /api/v1/items/{id}/content': { bob: 404, call: (i) => ({ path: `/api/v1/items/${i.fileId}/content`, bytes: 'overwritten by bob' }) },
  'GET /api/v1/items/{id}/content': { bob: 404, call: (i) => ({ path: `/api/v1/items/${i.fileId}/content` }) },
  'PUT /api/v1/items/{id}/children/{name}/content': { bob: 404, call: (i) => ({ path: `/api/v1/items/${i.folderId}/children/planted.txt/content`, bytes: 'planted by bob' }) },
};

/** The routes a device marked for wipe can still reach: learn of the wipe, confirm it, see its session, sign out. */
const WIPE_ROUTES = ['POST /api/v1/auth/logout', 'GET /api/v1/auth/session', 'GET /api/v1/device/wipe', 'POST /api/v1/device/wipe/confirm'];
/** The routes a user who must first turn on 2FA can reach. */
const ENROLLMENT_ROUTES = [
  'POST /api/v1/auth/logout', 'GET /api/v1/auth/session', 'GET /api/v1/me',
  'GET /api/v1/account/2fa', 'POST /api/v1/account/2fa/setup', 'POST /api/v1/account/2fa/enable',
];
const PUBLIC_ROUTES = [
  'POST /api/v1/auth/signup', 'POST /api/v1/auth/login', 'POST /api/v1/auth/login/2fa', 'POST /api/v1/auth/refresh',
  'POST /api/v1/auth/password/forgot', 'POST /api/v1/auth/password/reset', 'POST /api/v1/auth/device', 'POST /api/v1/auth/device/token',
];

/**
 * Requests that mix bob's own ids with alice's: the alice half must be
 * invisible too. Not tied to the document; they complement ROUTES.
 */
const MIXED: { label: string; method: string; call(i: Ids): Call }[] = [
  { label: 'move my file into her folder', method: 'PATCH', call: (i) => ({ path: `/api/v1/items/${i.bobFileId}`, json: { parentId: i.folderId } }) },
  { label: 'copy my file into her folder', method: 'POST', call: (i) => ({ path: `/api/v1/items/${i.bobFileId}/copy`, json: { parentId: i.folderId } }) },
  { label: 'list her root', method: 'GET', call: (i) => ({ path: `/api/v1/items/${i.rootId}/children` }) },
  { label: 'stat her root', method: 'GET', call: (i) => ({ path: `/api/v1/items/${i.rootId}` }) },
  { label: 'create a folder in her root', method: 'POST', call: (i) => ({ path: '/api/v1/folders', json: { parentId: i.rootId, name: 'planted' } }) },
  { label: 'upload into her root by id', method: 'PUT', call: (i) => ({ path: `/api/v1/items/${i.rootId}/children/planted.txt/content`, bytes: 'x' }) },
  { label: 'her version id on my file (download)', method: 'GET', call: (i) => ({ path: `/api/v1/items/${i.bobFileId}/versions/${i.versionId}/content` }) },
  { label: 'her version id on my file (restore)', method: 'POST', call: (i) => ({ path: `/api/v1/items/${i.bobFileId}/versions/${i.versionId}/restore` }) },
  { label: 'stat her trashed item', method: 'GET', call: (i) => ({ path: `/api/v1/items/${i.trashedId}` }) },
  { label: 'trash her folder', method: 'DELETE', call: (i) => ({ path: `/api/v1/items/${i.folderId}` }) },
];

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const;
const SAFE = new Set(['GET', 'HEAD']);

function specPath(key: string): { method: string; path: string } {
  const [method, path] = key.split(' ');
  return { method, path };
}

/** How a request authenticates: any of an Authorization header, a session cookie (with its CSRF header), and the client's address. */
interface Auth {
  authorization?: string;
  /** The coffer_session cookie's value. */
  cookie?: string;
  csrf?: string;
  /** Sent as X-Forwarded-For (the server trusts it here). */
  ip?: string;
  userAgent?: string;
}

interface Answer { status: number; text: string; headers: Headers }

/** Sends a call with the given credentials (a bare string is an Authorization header value). */
async function send(url: string, method: string, call: Call, auth: Auth | string | null): Promise<Answer> {
  const a: Auth = typeof auth === 'string' ? { authorization: auth } : auth ?? {};
  const headers: Record<string, string> = {};
  if (a.authorization !== undefined) headers.authorization = a.authorization;
  if (a.cookie !== undefined) headers.cookie = `coffer_session=${a.cookie}`;
  if (a.csrf !== undefined) headers['x-csrf-token'] = a.csrf;
  if (a.ip !== undefined) headers['x-forwarded-for'] = a.ip;
  if (a.userAgent !== undefined) headers['user-agent'] = a.userAgent;
  let body: string | undefined;
  if (call.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(call.json);
  } else if (call.bytes !== undefined) {
    headers['content-type'] = 'application/octet-stream';
    body = call.bytes;
  }
  if (call.stream) {
    // An open event stream never ends by itself: take what arrives up to the first event, then abort.
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 5_000);
    try {
      const res = await fetch(url + call.path, { method, headers, signal: abort.signal });
      let text = '';
      if (res.body && res.status === 200) {
        const decoder = new TextDecoder();
        for await (const chunk of res.body) {
          text += decoder.decode(chunk, { stream: true });
          if (text.includes('\n\n')) break;
        }
      } else {
        text = await res.text();
      }
      return { status: res.status, text, headers: res.headers };
    } finally {
      clearTimeout(timer);
      abort.abort();
    }
  }
  const res = await fetch(url + call.path, { method, headers, body });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

/** The error body shape of every failure: `{ error: { code, message, requestId, details? } }` and nothing else. */
function assertError(a: Answer, status: number, code: string, label: string): void {
  assert.equal(a.status, status, `${label}: expected ${status} ${code}, got ${a.status} ${a.text.slice(0, 300)}`);
  if (a.text === '') return; // HEAD
  assert.match(a.headers.get('content-type') ?? '', /^application\/json/, label);
  const body = JSON.parse(a.text);
  assert.deepEqual(Object.keys(body), ['error'], label);
  const keys = Object.keys(body.error);
  assert.ok(keys.every((k) => ['code', 'message', 'requestId', 'details'].includes(k)), `${label}: unexpected keys ${keys}`);
  assert.equal(body.error.code, code, label);
  assert.equal(typeof body.error.message, 'string', label);
  assert.equal(typeof body.error.requestId, 'string', label);
}

interface Expected { status: number; code?: string }

const DEFAULT_CODES: Record<number, string> = { 401: 'UNAUTHENTICATED', 404: 'NOT_FOUND' };

function assertAnswer(a: Answer, e: Expected, label: string): void {
  const code = e.code ?? DEFAULT_CODES[e.status];
  if (e.status >= 400 && code) assertError(a, e.status, code, label);
  else assert.equal(a.status, e.status, `${label}: expected ${e.status}, got ${a.status} ${a.text.slice(0, 300)}`);
}

function totpCode(secret: string, at: number): string {
  return new TOTP({ secret: Secret.fromBase32(secret), digits: 6, period: 30 }).generate({ timestamp: at });
}

/** A signed-in session as the test holds it. */
interface Party {
  name: string;
  ip: string;
  sessionId: string;
  deviceId: string;
  deviceKey?: string;
  /** Sync clients. */
  access?: string;
  refresh?: string;
  /** Browsers: the coffer_session cookie's value and its CSRF token. */
  cookie?: string;
  csrf?: string;
}

/** The credentials of a party: a bearer token, or the cookie with its CSRF token (`csrf: false` leaves the header out). */
function authOf(p: Party, opts: { csrf?: string | false } = {}): Auth {
  if (p.access) return { authorization: `Bearer ${p.access}`, ip: p.ip };
  const csrf = opts.csrf === false ? undefined : opts.csrf ?? p.csrf;
  return { cookie: p.cookie, ...(csrf === undefined ? {} : { csrf }), ip: p.ip };
}

/** A tiny client over `send` for setting things up and checking them. */
function apiOf(url: string) {
  return async function api(auth: Auth | null, method: string, path: string, body?: unknown): Promise<{ status: number; body: any; text: string; headers: Headers }> {
    const call: Call = body === undefined ? { path } : typeof body === 'string' ? { path, bytes: body } : { path, json: body };
    const a = await send(url, method, call, auth);
    let parsed: any = null;
    try { parsed = a.text ? JSON.parse(a.text) : null; } catch { parsed = a.text; }
    return { status: a.status, body: parsed, text: a.text, headers: a.headers };
  };
}

/** POST /api/v1/auth/login; returns the session, or the raw answer when it did not sign in. */
async function signIn(url: string, login: string, opts: { client?: 'sync' | 'browser'; ip?: string; userAgent?: string; password?: string; extra?: Record<string, unknown> } = {}): Promise<Party> {
  const client = opts.client ?? 'sync';
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (opts.ip) headers['x-forwarded-for'] = opts.ip;
  if (opts.userAgent) headers['user-agent'] = opts.userAgent;
  const res = await fetch(`${url}/api/v1/auth/login`, {
    method: 'POST', headers, body: JSON.stringify({ login, password: opts.password ?? TEST_PASSWORD, client, ...opts.extra }),
  });
  const text = await res.text();
  assert.equal(res.status, 200, `sign-in as ${login}: ${text}`);
  const body = JSON.parse(text);
  assert.equal(body.status, 'signed-in', `sign-in as ${login}: ${text}`);
  const base = { name: login, ip: opts.ip ?? '127.0.0.1', sessionId: body.session.id, deviceId: body.session.deviceId };
  if (client === 'sync') return { ...base, access: body.accessToken, refresh: body.refreshToken, deviceKey: body.deviceKey };
  const cookie = res.headers.getSetCookie().find((c) => c.startsWith('coffer_session='))?.split(';')[0].slice('coffer_session='.length);
  assert.ok(cookie, 'the browser sign-in sets the session cookie');
  assert.equal(typeof body.csrfToken, 'string');
  return { ...base, cookie, csrf: body.csrfToken };
}

for (const dialect of ['sqlite', 'postgres'] as const satisfies DialectName[]) {
  const pgSkip = dialect === 'postgres' ? await postgresUnavailable() : null;

  describe(`authorization: every route in the OpenAPI document (${dialect})`, { skip: pgSkip ? `skipped: ${pgSkip}` : false }, () => {
    let s: TestServer;
    let now = Date.now();
    const clock = { now: () => now };
    let api: ReturnType<typeof apiOf>;
    let alice: Party;
    let bob: Party;
    /** Alice in a browser that stays signed in, and her app password. */
    let aliceBrowser: Party;
    let aliceAppPassword: string;
    let aliceToolDeviceId: string;
    /** A second browser session of bob's: its CSRF token must not work with alice's cookie. */
    let bobBrowser: Party;
    /** An administrator. */
    let ada: Party;
    /** A user with 2FA on, and her authenticator's secret. */
    let erinSecret: string;
    let ids: Ids;
    let spec: { paths: Record<string, Record<string, { security?: unknown[] }>>; security?: unknown[] };
    /** Strings that identify alice's data; none may appear in anything bob or an anonymous caller receives. */
    let secrets: string[];

    function assertNoLeak(a: { text: string; headers?: Headers }, label: string): void {
      const headerText = a.headers ? [...a.headers.entries()].map(([k, v]) => `${k}: ${v}`).join('\n') : '';
      for (const secret of secrets) {
        assert.ok(!a.text.includes(secret), `${label}: the response body contains alice's ${JSON.stringify(secret)}`);
        assert.ok(!headerText.includes(secret), `${label}: a response header contains alice's ${JSON.stringify(secret)}`);
      }
    }

    /** Every documented operation, as `METHOD /path`. */
    function documented(): string[] {
      return Object.entries(spec.paths).flatMap(([path, ops]) =>
        METHODS.filter((m) => ops[m] !== undefined).map((m) => `${m.toUpperCase()} ${path}`));
    }

    /** Alice's sessions, devices and secrets become secrets too, as they are made. */
    function remember(p: Party): Party {
      secrets.push(...[p.sessionId, p.deviceId, p.deviceKey, p.access, p.refresh, p.cookie, p.csrf].filter((x): x is string => typeof x === 'string'));
      return p;
    }
    const aliceSignIn = async (opts: Parameters<typeof signIn>[2] = {}) => remember(await signIn(s.url, 'alice', { ip: ALICE_IP, userAgent: ALICE_UA, ...opts }));

    /**
     * Sends every authenticated row's call with `auth` and checks the answer
     * `expect` gives for it (null: leave the row out). GET rows are sent as
     * HEAD too. Refusals must carry nothing of alice's.
     */
    async function sweep(label: string, auth: Auth, expect: (key: string, route: RouteSpec) => Expected | null, opts: { ids?: Ids; leakCheck?: boolean; url?: string } = {}): Promise<number> {
      let n = 0;
      for (const [key, route] of Object.entries(ROUTES)) {
        if (route.public) continue;
        const e = expect(key, route);
        if (!e) continue;
        const { method } = specPath(key);
        const call = route.call(opts.ids ?? ids);
        const a = await send(opts.url ?? s.url, method, call, auth);
        assertAnswer(a, e, `${label}: ${key}`);
        if (a.status >= 400 && opts.leakCheck !== false) assertNoLeak(a, `${label}: ${key}`);
        if (method === 'GET') {
          const head = await send(opts.url ?? s.url, 'HEAD', call, auth);
          assert.equal(head.status, e.status, `${label}: HEAD ${key}`);
          assert.equal(head.text, '', `${label}: HEAD ${key} has no body`);
        }
        n++;
      }
      return n;
    }
    const every = (e: Expected) => () => e;
    const authenticatedCount = () => Object.values(ROUTES).filter((r) => !r.public).length;

    before(async () => {
      s = await startTestServer({ dialect, clock, config: { trustProxy: true, accessTokenSeconds: ACCESS_TOKEN_SECONDS, sessionIdleMinutes: SESSION_IDLE_MINUTES } });
      api = apiOf(s.url);
      secrets = [];
      const users = s.server.coffer.services.users;
      const aliceRow = await users.create({ username: 'alice', password: TEST_PASSWORD, email: ALICE_EMAIL });
      await users.create({ username: 'bob', password: TEST_PASSWORD, email: 'bob@example.com' });
      await users.create({ username: 'ada', password: TEST_PASSWORD, isAdmin: true });
      await users.create({ username: 'erin', password: TEST_PASSWORD });
      secrets.push(aliceRow.id, aliceRow.root_id, ALICE_IP, ALICE_UA, ALICE_EMAIL, ALICE_DEVICE, ALICE_PHONE, ALICE_TABLET, ALICE_TOOL);

      alice = await aliceSignIn({ extra: { deviceName: ALICE_DEVICE } });
      bob = await signIn(s.url, 'bob', { ip: BOB_IP });
      bobBrowser = await signIn(s.url, 'bob', { ip: BOB_IP, client: 'browser', extra: { remember: true } });
      ada = await signIn(s.url, 'ada');
      const A = authOf(alice);

      const folder = await api(A, 'POST', '/api/v1/folders', { parentId: aliceRow.root_id, name: FOLDER_NAME });
      assert.equal(folder.status, 201);
      const filePath = `${encodeURIComponent(FOLDER_NAME)}/${encodeURIComponent(FILE_NAME)}`;
      const v1 = await api(A, 'PUT', `/api/v1/content/${filePath}`, CONTENT_V1);
      assert.equal(v1.status, 201);
      const v2 = await api(A, 'PUT', `/api/v1/content/${filePath}`, CONTENT_V2);
      assert.equal(v2.status, 200);
      const versions = await api(A, 'GET', `/api/v1/items/${v1.body.id}/versions`);
      assert.equal(versions.body.versions.length, 2);
      const oldVersion = versions.body.versions.find((v: { current: boolean }) => !v.current);
      const trashed = await api(A, 'PUT', `/api/v1/content/${encodeURIComponent(TRASHED_NAME)}`, TRASHED_CONTENT);
      assert.equal(trashed.status, 201);
      assert.equal((await api(A, 'DELETE', `/api/v1/items/${trashed.body.id}`)).status, 200);

      const bobMe = await api(authOf(bob), 'GET', '/api/v1/me');
      const bobFile = await api(authOf(bob), 'PUT', '/api/v1/content/bob.txt', BOB_CONTENT);
      assert.equal(bobFile.status, 201);

      ids = {
        rootId: aliceRow.root_id, folderId: folder.body.id, fileId: v1.body.id, versionId: oldVersion.id, trashedId: trashed.body.id,
        filePath, bobRootId: bobMe.body.rootId, bobFileId: bobFile.body.id, aliceCursor: (await api(A, 'GET', '/api/v1/drive')).body.cursor,
        uploadId: (await api(A, 'POST', '/api/v1/uploads')).body.uploadId, deviceId: alice.deviceId, sessionId: alice.sessionId,
      };
      secrets.push(
        folder.body.id, v1.body.id, oldVersion.id, v2.body.etag.replaceAll('"', ''), trashed.body.id,
        FOLDER_NAME, FILE_NAME, TRASHED_NAME, CONTENT_V1, CONTENT_V2, TRASHED_CONTENT, v2.body.contentHash, ids.uploadId,
      );

      // More of alice's devices: a browser that stays signed in, an app password, a reported backlog.
      aliceBrowser = await aliceSignIn({ client: 'browser', extra: { remember: true, deviceName: ALICE_TABLET } });
      const tool = await api(A, 'POST', '/api/v1/app-passwords', { name: ALICE_TOOL });
      assert.equal(tool.status, 201);
      aliceAppPassword = tool.body.password;
      aliceToolDeviceId = tool.body.deviceId;
      secrets.push(aliceAppPassword, tool.body.deviceId);
      assert.equal((await api(A, 'PUT', '/api/v1/device/pending-changes', { pendingChanges: 7 })).status, 204);

      // Erin turns on 2FA.
      const erin = await signIn(s.url, 'erin');
      const setup = await api(authOf(erin), 'POST', '/api/v1/account/2fa/setup');
      assert.equal(setup.status, 200);
      erinSecret = setup.body.secret;
      const enable = await api(authOf(erin), 'POST', '/api/v1/account/2fa/enable', { code: totpCode(erinSecret, now) });
      assert.equal(enable.status, 200, enable.text);

      const res = await fetch(`${s.url}/api/openapi.json`);
      assert.equal(res.status, 200);
      spec = await res.json() as typeof spec;
    });

    after(() => s?.close());

    it('every documented route has a row in ROUTES, and every row is documented', () => {
      const inSpec = documented();
      const missing = inSpec.filter((k) => !(k in ROUTES));
      assert.deepEqual(missing, [], `routes in /api/openapi.json without an authorization expectation; add them to ROUTES in ${import.meta.filename}`);
      const stale = Object.keys(ROUTES).filter((k) => !inSpec.includes(k));
      assert.deepEqual(stale, [], 'rows in ROUTES for routes the OpenAPI document no longer has');
      assert.ok(inSpec.length >= 50, `only ${inSpec.length} routes documented`);
    });

    it('the document marks exactly the public rows as needing no credentials', () => {
      assert.deepEqual(spec.security, [{ bearer: [] }, { cookie: [] }, { appPassword: [] }], 'a bearer token, the session cookie or an app password is the document-wide default');
      for (const key of Object.keys(ROUTES)) {
        const { method, path } = specPath(key);
        const op = spec.paths[path]?.[method.toLowerCase()];
        if (!op) continue; // reported by the coverage test
        const isPublic = Array.isArray(op.security) && op.security.length === 0;
        assert.equal(isPublic, ROUTES[key].public === true, `${key}: the document says ${isPublic ? 'public' : 'authenticated'}`);
      }
      assert.deepEqual(Object.keys(ROUTES).filter((k) => ROUTES[k].public), PUBLIC_ROUTES);
      // The restricted-session exceptions this file expects are exactly the ones the brief of each restriction names.
      assert.deepEqual(Object.keys(ROUTES).filter((k) => ROUTES[k].allow?.wipe !== undefined).sort(), [...WIPE_ROUTES].sort());
      assert.deepEqual(Object.keys(ROUTES).filter((k) => ROUTES[k].allow?.['mfa-enrollment'] !== undefined).sort(), [...ENROLLMENT_ROUTES].sort());
    });

    it('anonymous requests get 401 UNAUTHENTICATED on every non-public route, before any id is looked at; public routes answer', async () => {
      for (const [key, route] of Object.entries(ROUTES)) {
        const { method } = specPath(key);
        const a = await send(s.url, method, route.call(ids), null);
        if (route.public) {
          assertAnswer(a, route.anonymous!, `anonymous ${key}`);
        } else {
          assertError(a, 401, 'UNAUTHENTICATED', `anonymous ${key}`);
          assert.match(a.headers.get('www-authenticate') ?? '', /^Bearer /, `${key}: WWW-Authenticate`);
        }
        assertNoLeak(a, `anonymous ${key}`);
        if (method === 'GET') {
          const head = await send(s.url, 'HEAD', route.call(ids), null);
          assert.equal(head.status, route.public ? head.status : 401, `anonymous HEAD ${key}`);
          assertNoLeak(head, `anonymous HEAD ${key}`);
        }
      }
    });

    it('the credentials alice really holds work, each by its own transport', async () => {
      const basic = `Basic ${Buffer.from(`alice:${aliceAppPassword}`).toString('base64')}`;
      for (const [label, auth] of [['access token', authOf(alice)], ['session cookie', authOf(aliceBrowser)], ['app password', { authorization: basic }]] as const) {
        const me = await api(auth, 'GET', '/api/v1/me');
        assert.equal(me.status, 200, `${label}: ${me.text}`);
        assert.equal(me.body.username, 'alice');
      }
    });

    it('malformed, unknown, mixed-up and non-bearer credentials get 401 on every non-public route', async () => {
      const b64 = (x: string) => Buffer.from(x).toString('base64');
      const bad: [string, Auth][] = [
        ...[
          'Bearer', 'Bearer ', 'Bearer cfa_not-a-real-token', `Bearer ${alice.access}x`, `Bearer ${alice.access!.slice(0, -1)}`,
          `Bearer ${'x'.repeat(600)}`, `Basic ${b64(`alice:${TEST_PASSWORD}`)}`, alice.access!, `Token ${alice.access}`,
          // A credential of one kind presented as another.
          `Bearer ${alice.refresh}`, `Bearer ${aliceBrowser.cookie}`, `Bearer ${aliceAppPassword}`, `Bearer ${alice.deviceKey}`, `Bearer ${aliceBrowser.csrf}`,
          `Basic ${b64(`alice:${alice.access}`)}`, `Basic ${b64(`alice:${aliceBrowser.cookie}`)}`, `Basic ${b64(`bob:${aliceAppPassword}`)}`,
          `Basic ${b64(`alice:${aliceAppPassword}x`)}`, `Basic ${b64(`:${aliceAppPassword}`)}`, `Basic ${b64('alice:')}`, 'Basic !!!',
        ].map((h): [string, Auth] => [`Authorization: ${h.slice(0, 40)}`, { authorization: h }]),
        ...[alice.access!, alice.refresh!, aliceAppPassword, 'cfs_garbage', `${aliceBrowser.cookie}x`, 'x'.repeat(600)]
          .map((c): [string, Auth] => [`Cookie: ${c.slice(0, 40)}`, { cookie: c, csrf: csrfTokenFor(c) }]),
      ];
      let checked = 0;
      for (const [label, auth] of bad) {
        checked += await sweep(label, auth, every({ status: 401, code: 'UNAUTHENTICATED' }));
      }
      assert.equal(checked, bad.length * authenticatedCount());
      // Public routes answer exactly as they do anonymously, whatever comes along.
      for (const [label, auth] of bad.slice(0, 3)) {
        for (const key of PUBLIC_ROUTES) {
          const a = await send(s.url, 'POST', ROUTES[key].call(ids), auth);
          assertAnswer(a, ROUTES[key].anonymous!, `${label}: ${key}`);
        }
      }
    });

    it('sign-in answers the same for a wrong password and an unknown user, by name or by e-mail', async () => {
      const answers = [];
      for (const login of ['alice', nobody(), ALICE_EMAIL, `${nobody()}@example.org`]) {
        const a = await send(s.url, 'POST', { path: '/api/v1/auth/login', json: { login, password: 'nope' } }, null);
        assertError(a, 401, 'WRONG_CREDENTIALS', `wrong password for ${login}`);
        assertNoLeak(a, 'wrong password');
        answers.push(JSON.parse(a.text).error.message);
      }
      assert.equal(new Set(answers).size, 1, 'one message for all');
    });

    it('a session signed out with POST /api/v1/auth/logout gets 401 on every non-public route; the user\'s other sessions keep working', async () => {
      for (const client of ['sync', 'browser'] as const) {
        const p = await aliceSignIn({ client });
        assert.equal((await api(authOf(p), 'GET', '/api/v1/me')).status, 200);
        const out = await api(authOf(p), 'POST', '/api/v1/auth/logout');
        assert.equal(out.status, 204, out.text);
        // The cookie comes with its right CSRF token: the refusal is for the session, not the header.
        const n = await sweep(`signed-out ${client} session`, authOf(p), every({ status: 401, code: 'UNAUTHENTICATED' }));
        assert.equal(n, authenticatedCount());
        if (p.refresh) {
          const r = await send(s.url, 'POST', { path: '/api/v1/auth/refresh', json: { refreshToken: p.refresh } }, null);
          assertError(r, 401, 'UNAUTHENTICATED', 'refresh after sign-out');
        }
      }
      // Signed out from another device: the same.
      const other = await aliceSignIn();
      assert.equal((await api(authOf(alice), 'DELETE', `/api/v1/sessions/${other.sessionId}`)).status, 204);
      await sweep('session signed out from elsewhere', authOf(other), every({ status: 401, code: 'UNAUTHENTICATED' }));
      const removed = await aliceSignIn();
      assert.equal((await api(authOf(alice), 'DELETE', `/api/v1/devices/${removed.deviceId}`)).status, 204);
      await sweep('removed device', authOf(removed), every({ status: 401, code: 'UNAUTHENTICATED' }));

      for (const p of [alice, aliceBrowser]) assert.equal((await api(authOf(p), 'GET', '/api/v1/me')).status, 200, "alice's other sessions still work");
    });

    it('a sign-in waiting for its second factor authenticates nothing: its challenge gets 401 everywhere, as a token, a cookie or a password', async () => {
      const first = await api({ ip: '192.0.2.10' }, 'POST', '/api/v1/auth/login', { login: 'erin', password: TEST_PASSWORD, client: 'sync' });
      assert.equal(first.status, 200, first.text);
      assert.equal(first.body.status, 'mfa-required');
      assert.equal(first.body.accessToken, undefined);
      assert.equal(first.body.session, undefined);
      assert.equal(first.headers.getSetCookie().length, 0, 'no cookie before the second factor');
      const challenge: string = first.body.challenge;
      assert.equal(typeof challenge, 'string');
      const browserFirst = await api(null, 'POST', '/api/v1/auth/login', { login: 'erin', password: TEST_PASSWORD, client: 'browser' });
      assert.equal(browserFirst.body.status, 'mfa-required');
      assert.ok(!browserFirst.headers.getSetCookie().some((c) => c.startsWith('coffer_session=')), 'no session cookie before the second factor');

      const as: [string, Auth][] = [
        ['challenge as bearer token', { authorization: `Bearer ${challenge}` }],
        ['challenge as session cookie', { cookie: challenge, csrf: csrfTokenFor(challenge) }],
        ['browser challenge as session cookie', { cookie: browserFirst.body.challenge, csrf: csrfTokenFor(browserFirst.body.challenge) }],
        ['challenge as app password', { authorization: `Basic ${Buffer.from(`erin:${challenge}`).toString('base64')}` }],
      ];
      for (const [label, auth] of as) await sweep(label, auth, every({ status: 401, code: 'UNAUTHENTICATED' }));
      const asRefresh = await send(s.url, 'POST', { path: '/api/v1/auth/refresh', json: { refreshToken: challenge } }, null);
      assertError(asRefresh, 401, 'UNAUTHENTICATED', 'challenge as refresh token');

      // The challenge was live all along: with a code from the next time step it signs in, once.
      now += 30_000;
      const second = await api({ ip: '192.0.2.10' }, 'POST', '/api/v1/auth/login/2fa', { challenge, code: totpCode(erinSecret, now) });
      assert.equal(second.status, 200, second.text);
      assert.equal(second.body.status, 'signed-in');
      assert.equal((await api({ authorization: `Bearer ${second.body.accessToken}` }, 'GET', '/api/v1/me')).body.username, 'erin');
      const again = await api(null, 'POST', '/api/v1/auth/login/2fa', { challenge, code: totpCode(erinSecret, now) });
      assertError({ status: again.status, text: again.text, headers: again.headers }, 401, 'UNAUTHENTICATED', 'a challenge works once');
      await sweep('spent challenge', { authorization: `Bearer ${challenge}` }, every({ status: 401, code: 'UNAUTHENTICATED' }));
    });

    it('a browser session without the right X-CSRF-Token gets 403 CSRF_FAILED on every state-changing route, and nothing changes', async () => {
      const tokens: [string, string | false][] = [
        ['no X-CSRF-Token', false], ['an empty X-CSRF-Token', ''], ['a wrong X-CSRF-Token', 'not-the-token'],
        ["bob's CSRF token", bobBrowser.csrf!], ['the token with a character changed', `${aliceBrowser.csrf!.slice(0, -1)}${aliceBrowser.csrf!.endsWith('A') ? 'B' : 'A'}`],
        ['the cookie itself as the token', aliceBrowser.cookie!], ['the token in upper case', aliceBrowser.csrf!.toUpperCase()],
      ];
      for (const [label, csrf] of tokens) {
        const n = await sweep(`alice's cookie with ${label}`, authOf(aliceBrowser, { csrf }),
          (key) => (SAFE.has(specPath(key).method) ? null : { status: 403, code: 'CSRF_FAILED' }));
        assert.ok(n >= 30, `${n} state-changing routes`);
      }
      // Reading needs no CSRF token; changing works with the right one.
      assert.equal((await api(authOf(aliceBrowser, { csrf: false }), 'GET', '/api/v1/me')).status, 200);
      assert.equal((await api(authOf(aliceBrowser, { csrf: false }), 'GET', `/api/v1/items/${ids.fileId}`)).status, 200);
      assert.equal((await api(authOf(aliceBrowser), 'PUT', '/api/v1/device/pending-changes', { pendingChanges: 0 })).status, 204);
      const session = await api(authOf(aliceBrowser, { csrf: false }), 'GET', '/api/v1/auth/session');
      assert.equal(session.body.csrfToken, aliceBrowser.csrf, 'GET /api/v1/auth/session hands a browser its CSRF token');
      // A bearer token needs none: it is never sent by a browser on its own.
      assert.equal((await api({ ...authOf(alice), csrf: 'whatever' }, 'PUT', '/api/v1/device/pending-changes', { pendingChanges: 7 })).status, 204);
    });

    it("bob gets 404 NOT_FOUND for alice's ids on every id route, his own answer elsewhere, and no trace of her data anywhere", async () => {
      for (const [key, route] of Object.entries(ROUTES)) {
        const { method } = specPath(key);
        const call = route.call(ids);
        const p = call.revokesToken ? await signIn(s.url, 'bob', { ip: BOB_IP }) : bob;
        const a = await send(s.url, method, call, authOf(p));
        assertAnswer(a, { status: route.bob, code: route.bobCode }, `bob: ${key}`);
        assertNoLeak(a, `bob: ${key}`);
        if (method === 'GET') {
          const head = await send(s.url, 'HEAD', call, authOf(p));
          assert.equal(head.status, route.bob, `bob: HEAD ${key}`);
          assertNoLeak(head, `bob: HEAD ${key}`);
        }
      }
      for (const m of MIXED) {
        const a = await send(s.url, m.method, m.call(ids), authOf(bob));
        assertError(a, 404, 'NOT_FOUND', `bob: ${m.label}`);
        assertNoLeak(a, `bob: ${m.label}`);
      }
    });

    it("bob's lists of devices, sessions and security events hold his own and nothing of alice's", async () => {
      const devices = await api(authOf(bob), 'GET', '/api/v1/devices');
      assert.equal(devices.status, 200);
      assertNoLeak(devices, "bob's devices");
      assert.ok(devices.body.devices.some((d: { id: string; current: boolean }) => d.id === bob.deviceId && d.current), 'his own device is listed');
      assert.ok(devices.text.includes(BOB_IP), 'his own address is shown (so the absence of hers means something)');
      assert.ok(devices.body.devices.every((d: { sessions: { id: string }[] }) => d.sessions.every((x) => !secrets.includes(x.id))));
      const audit = await api(authOf(bob), 'GET', '/api/v1/account/audit?limit=500');
      assert.equal(audit.status, 200);
      assertNoLeak(audit, "bob's audit log");
      assert.ok(audit.body.events.some((e: { type: string; ip: string }) => e.type === 'signin.success' && e.ip === BOB_IP));
      // Alice sees her own.
      const hers = await api(authOf(alice), 'GET', '/api/v1/devices');
      assert.ok(hers.text.includes(ALICE_IP) && hers.text.includes(ALICE_TABLET) && hers.text.includes(ALICE_TOOL));
    });

    it("alice's ids answer exactly like ids that never existed", async () => {
      const ghost: Ids = {
        ...ids, fileId: '00000000-0000-4000-8000-000000000000', folderId: '00000000-0000-4000-8000-000000000001', trashedId: '00000000-0000-4000-8000-000000000002',
        versionId: '00000000-0000-4000-8000-000000000003', deviceId: '00000000-0000-4000-8000-000000000004', sessionId: '00000000-0000-4000-8000-000000000005',
      };
      for (const [key, route] of Object.entries(ROUTES)) {
        if (route.bob !== 404) continue;
        const { method } = specPath(key);
        const real = await send(s.url, method, route.call(ids), authOf(bob));
        const fake = await send(s.url, method, route.call(ghost), authOf(bob));
        const strip = (t: string) => { const b = JSON.parse(t); delete b.error.requestId; return b; };
        assert.equal(real.status, fake.status, key);
        assert.deepEqual(strip(real.text), strip(fake.text), `${key}: alice's id and an unknown id must be indistinguishable`);
      }
    });

    it('a device marked for wipe gets 403 DEVICE_WIPE_REQUESTED everywhere but the wipe routes, sign-out and its session; after confirming, 401', async () => {
      for (const client of ['sync', 'browser'] as const) {
        const device = await aliceSignIn({ client, extra: { deviceName: ALICE_PHONE, remember: true } });
        const d = authOf(device);
        assert.equal((await api(d, 'GET', '/api/v1/items/root')).status, 200);
        const wipe = await api(authOf(alice), 'POST', `/api/v1/devices/${device.deviceId}/wipe`);
        assert.equal(wipe.status, 200, wipe.text);
        assert.equal(typeof wipe.body.wipe.requestedAt, 'number');

        const ends = new Set(['POST /api/v1/auth/logout', 'POST /api/v1/device/wipe/confirm']);
        const n = await sweep(`${client} device marked for wipe`, d, (key, route) =>
          (ends.has(key) ? null : route.allow?.wipe ?? { status: 403, code: 'DEVICE_WIPE_REQUESTED' }), { leakCheck: false });
        assert.equal(n, authenticatedCount() - 2);
        const session = await api(d, 'GET', '/api/v1/auth/session');
        assert.equal(session.body.restriction, 'wipe');
        assert.deepEqual((await api(d, 'GET', '/api/v1/device/wipe')).body, { wipe: true, requestedAt: wipe.body.wipe.requestedAt });

        // Signing out does not cancel the wipe: the device can still learn of it and confirm it, and nothing else.
        assert.equal((await api(d, 'POST', '/api/v1/auth/logout')).status, 204);
        await sweep(`${client} device marked for wipe, signed out`, d, (key, route) =>
          (ends.has(key) ? null : route.allow?.wipe ?? { status: 403, code: 'DEVICE_WIPE_REQUESTED' }), { leakCheck: false });
        const confirm = await api(d, 'POST', '/api/v1/device/wipe/confirm', { removedCount: 2, kept: [{ path: 'unsynced.txt', reason: 'not uploaded yet' }] });
        assert.equal(confirm.status, 204, confirm.text);
        const m = await sweep(`${client} device after its wipe`, d, every({ status: 401, code: 'UNAUTHENTICATED' }));
        assert.equal(m, authenticatedCount());

        const listed = (await api(authOf(alice), 'GET', '/api/v1/devices')).body.devices.find((x: { id: string }) => x.id === device.deviceId);
        assert.equal(typeof listed.wipe.confirmedAt, 'number');
        assert.equal(listed.wipe.report.removedCount, 2);
        assert.equal(listed.signedIn, false);
      }
      assert.equal((await api(authOf(alice), 'GET', '/api/v1/me')).status, 200, 'the device that asked is not affected');
      // A device cannot be told to wipe itself, nor an app password.
      assertError(await send(s.url, 'POST', { path: `/api/v1/devices/${alice.deviceId}/wipe` }, authOf(alice)), 400, 'VALIDATION_FAILED', 'wipe myself');
      assertError(await send(s.url, 'POST', { path: `/api/v1/devices/${aliceToolDeviceId}/wipe` }, authOf(alice)), 400, 'VALIDATION_FAILED', 'wipe an app password');
    });

    it('only an administrator reads another user\'s audit log (403 FORBIDDEN otherwise, whether or not the user exists)', async () => {
      const asAda = await api(authOf(ada), 'GET', '/api/v1/admin/users/alice/audit?limit=500');
      assert.equal(asAda.status, 200, asAda.text);
      assert.ok(asAda.body.events.some((e: { type: string; ip: string }) => e.type === 'signin.success' && e.ip === ALICE_IP));
      assertError(await send(s.url, 'GET', { path: '/api/v1/admin/users/nobody-at-all/audit' }, authOf(ada)), 404, 'NOT_FOUND', 'admin: unknown user');
      // (bob's sweep signed his other sessions out: a fresh browser session)
      const bobInBrowser = await signIn(s.url, 'bob', { ip: BOB_IP, client: 'browser' });
      for (const [label, p] of [['bob', bob], ['alice', alice], ["bob's browser", bobInBrowser]] as const) {
        for (const who of ['alice', 'bob', 'ada', 'nobody-at-all']) {
          const a = await send(s.url, 'GET', { path: `/api/v1/admin/users/${who}/audit` }, authOf(p));
          assertError(a, 403, 'FORBIDDEN', `${label} reads ${who}'s audit`);
          if (p !== alice) assertNoLeak(a, `${label} reads ${who}'s audit`);
        }
      }
    });

    it("alice's drive, devices and sessions are exactly as they were after all of bob's attempts", async () => {
      const A = authOf(alice);
      const file = await api(A, 'GET', `/api/v1/items/${ids.fileId}`);
      assert.equal(file.status, 200);
      assert.equal(file.body.name, FILE_NAME);
      assert.equal(file.body.parentId, ids.folderId);
      assert.equal(file.body.rev, 2);
      assert.equal((await api(A, 'GET', `/api/v1/items/${ids.fileId}/content`)).text, CONTENT_V2);
      const versions = await api(A, 'GET', `/api/v1/items/${ids.fileId}/versions`);
      assert.equal(versions.body.versions.length, 2);
      const children = await api(A, 'GET', `/api/v1/items/${ids.folderId}/children`);
      assert.deepEqual(children.body.items.map((i: { name: string }) => i.name), [FILE_NAME]);
      const root = await api(A, 'GET', `/api/v1/items/${ids.rootId}/children`);
      assert.deepEqual(root.body.items.map((i: { name: string }) => i.name), [FOLDER_NAME]);
      const trash = await api(A, 'GET', '/api/v1/trash');
      assert.deepEqual(trash.body.items.map((i: { id: string }) => i.id), [ids.trashedId]);
      assert.equal((await api(A, 'DELETE', `/api/v1/uploads/${ids.uploadId}`)).status, 204, "alice's upload session is still open");

      // Bob's DELETE /sessions/{hers}, DELETE /devices/{hers} and POST /devices/{hers}/wipe changed nothing.
      const devices = (await api(A, 'GET', '/api/v1/devices')).body.devices as { id: string; name: string; wipe: unknown; signedIn: boolean; pendingChanges: number | null; sessions: { id: string }[] }[];
      const main = devices.find((d) => d.id === ids.deviceId);
      assert.ok(main, "alice's main device is still listed");
      assert.equal(main.name, ALICE_DEVICE);
      assert.equal(main.wipe, null, 'no wipe was requested on it');
      assert.equal(main.pendingChanges, 7);
      assert.deepEqual(main.sessions.map((x) => x.id), [ids.sessionId]);
      assert.ok(devices.some((d) => d.name === ALICE_TOOL && d.signedIn), 'her app password still works');
      assert.ok(!devices.some((d) => d.name === 'planted tool'));
      for (const p of [alice, aliceBrowser]) assert.equal((await api(authOf(p), 'GET', '/api/v1/auth/session')).body.restriction, null);
      const me = await api(A, 'GET', '/api/v1/account/2fa');
      assert.deepEqual(me.body, { enabled: false, recoveryCodesLeft: 0 });

      const B = authOf(bob);
      const bobRoot = await api(B, 'GET', `/api/v1/items/${ids.bobRootId}/children`);
      assert.deepEqual(bobRoot.body.items.map((i: { name: string }) => i.name), ['bob.txt'], "nothing of alice's was copied or moved to bob");
      assert.equal((await api(B, 'GET', `/api/v1/items/${ids.bobFileId}/content`)).text, BOB_CONTENT);
    });

    it(`an access token past its ${ACCESS_TOKEN_SECONDS} s gets 401 on every non-public route; its refresh token still renews it`, async () => {
      const p = await aliceSignIn();
      assert.equal((await api(authOf(p), 'GET', '/api/v1/me')).status, 200);
      now += ACCESS_TOKEN_SECONDS * 1000 - 1;
      assert.equal((await api(authOf(p), 'GET', '/api/v1/me')).status, 200, 'valid up to the last millisecond');
      now += 1;
      const n = await sweep('expired access token', authOf(p), every({ status: 401, code: 'UNAUTHENTICATED' }));
      assert.equal(n, authenticatedCount());
      const renewed = await api(null, 'POST', '/api/v1/auth/refresh', { refreshToken: p.refresh });
      assert.equal(renewed.status, 200, renewed.text);
      remember({ ...p, access: renewed.body.accessToken, refresh: renewed.body.refreshToken });
      assert.equal((await api({ authorization: `Bearer ${renewed.body.accessToken}` }, 'GET', '/api/v1/me')).status, 200);
      await sweep('expired access token, after a refresh', authOf(p), every({ status: 401, code: 'UNAUTHENTICATED' }));
    });

    it(`a browser session without "keep me signed in" ends after ${SESSION_IDLE_MINUTES} idle minutes: 401 on every non-public route`, async () => {
      const publicPc = await aliceSignIn({ client: 'browser' });
      const kept = await aliceSignIn({ client: 'browser', extra: { remember: true } });
      const info = await api(authOf(publicPc), 'GET', '/api/v1/auth/session');
      assert.equal(info.status, 200);
      // Activity keeps it alive.
      for (let i = 0; i < 3; i++) {
        now += (SESSION_IDLE_MINUTES - 1) * 60_000;
        assert.equal((await api(authOf(publicPc), 'GET', '/api/v1/me')).status, 200, `still active after ${i + 1} × ${SESSION_IDLE_MINUTES - 1} minutes`);
      }
      now += SESSION_IDLE_MINUTES * 60_000;
      // With its right CSRF token: the refusal is for the idle session.
      const n = await sweep('idle public-computer session', authOf(publicPc), every({ status: 401, code: 'UNAUTHENTICATED' }));
      assert.equal(n, authenticatedCount());
      assert.equal((await api(authOf(kept), 'GET', '/api/v1/me')).status, 200, 'a "keep me signed in" session outlives it');
      const listed = (await api(authOf(kept), 'GET', '/api/v1/devices')).body.devices.find((d: { id: string }) => d.id === publicPc.deviceId);
      assert.equal(listed.signedIn, false, 'the idle session is no longer listed as signed in');
    });

    it('/healthz, /metrics and /api/openapi.json are public and hold no user data', async () => {
      for (const authorization of [null, 'Bearer cfa_not-a-real-token']) {
        const health = await send(s.url, 'GET', { path: '/healthz' }, authorization);
        assert.equal(health.status, 200);
        assert.deepEqual(JSON.parse(health.text), { status: 'ok' });
        assertNoLeak(health, '/healthz');

        const doc = await send(s.url, 'GET', { path: '/api/openapi.json' }, authorization);
        assert.equal(doc.status, 200);
        assert.match(JSON.parse(doc.text).openapi, /^3\./);
        assertNoLeak(doc, '/api/openapi.json');
        assert.ok(!doc.text.includes('alice') && !doc.text.includes('bob.txt'));

        const metrics = await send(s.url, 'GET', { path: '/metrics' }, authorization);
        assert.equal(metrics.status, 200);
        assert.match(metrics.headers.get('content-type') ?? '', /^text\/plain/);
        assertNoLeak(metrics, '/metrics');
        assert.ok(!metrics.text.includes('alice') && !metrics.text.includes('bob.txt'), '/metrics names no user or file');
      }

      const text = await (await fetch(`${s.url}/metrics`)).text();
      assert.match(text, /^# TYPE coffer_http_requests_total counter$/m);
      assert.match(text, /^# TYPE coffer_http_request_duration_seconds histogram$/m);
      assert.match(text, /^# TYPE coffer_http_received_bytes_total counter$/m);
      assert.match(text, /^# TYPE coffer_http_sent_bytes_total counter$/m);
      assert.match(text, /^# TYPE coffer_uploads_in_progress gauge$/m);
      assert.match(text, /^coffer_uploads_in_progress 0$/m);
      // Requests are labelled by route pattern, never by the concrete URL (which holds ids and names).
      assert.match(text, /^coffer_http_requests_total\{method="GET",route="\/api\/v1\/items\/:id",status="200"\} \d+$/m);
      assert.match(text, /^coffer_http_requests_total\{method="GET",route="\/api\/v1\/items\/:id",status="404"\} \d+$/m);
      assert.match(text, /^coffer_http_requests_total\{method="PUT",route="\/api\/v1\/content\/\*",status="201"\} \d+$/m);
      assert.match(text, /^coffer_http_requests_total\{method="GET",route="\/api\/v1\/admin\/users\/:username\/audit",status="403"\} \d+$/m);
      assert.match(text, /^coffer_http_request_duration_seconds_bucket\{le="[^"]+",method="GET",route="\/api\/v1\/me"\} \d+$/m);
      assert.ok(Number(/^coffer_http_received_bytes_total (\d+)/m.exec(text)?.[1]) > 0, 'upload bytes are counted');
      assert.ok(Number(/^coffer_http_sent_bytes_total (\d+)/m.exec(text)?.[1]) > 0, 'downloaded bytes are counted');

      // Unknown URLs share one label: no user-chosen text becomes a metric label.
      await fetch(`${s.url}/no-such-route/${encodeURIComponent(FILE_NAME)}`);
      const after = await (await fetch(`${s.url}/metrics`)).text();
      assert.ok(!after.includes('no-such-route'));
      assert.match(after, /route="unmatched"/);
    });
  });

  describe(`authorization: a server that requires 2FA (${dialect})`, { skip: pgSkip ? `skipped: ${pgSkip}` : false }, () => {
    let s: TestServer;
    let now = Date.now();
    const clock = { now: () => now };
    let api: ReturnType<typeof apiOf>;
    const ghost: Ids = {
      rootId: '00000000-0000-4000-8000-000000000010', folderId: '00000000-0000-4000-8000-000000000011', fileId: '00000000-0000-4000-8000-000000000012',
      versionId: '00000000-0000-4000-8000-000000000013', trashedId: '00000000-0000-4000-8000-000000000014', filePath: 'a/b.txt',
      bobRootId: '00000000-0000-4000-8000-000000000015', bobFileId: '00000000-0000-4000-8000-000000000016', aliceCursor: 'x',
      uploadId: '00000000-0000-4000-8000-000000000017', deviceId: '00000000-0000-4000-8000-000000000018', sessionId: '00000000-0000-4000-8000-000000000019',
    };
    const enrollment = (key: string, route: RouteSpec): Expected | null =>
      (route.call(ghost).revokesToken ? null : route.allow?.['mfa-enrollment'] ?? { status: 403, code: 'MFA_ENROLLMENT_REQUIRED' });

    before(async () => {
      s = await startTestServer({ dialect, clock, config: { require2fa: true } });
      api = apiOf(s.url);
      await s.server.coffer.services.users.create({ username: 'carol', password: TEST_PASSWORD });
    });
    after(() => s?.close());

    it('a new user\'s session reaches only sign-out, its session, /me and the 2FA setup routes (403 MFA_ENROLLMENT_REQUIRED elsewhere) until 2FA is on', async () => {
      const sync = await signIn(s.url, 'carol');
      const browser = await signIn(s.url, 'carol', { client: 'browser' });
      for (const [label, p] of [['sync', sync], ['browser', browser]] as const) {
        const n = await sweep(label, authOf(p));
        assert.equal(n, Object.values(ROUTES).filter((r) => !r.public).length - 1);
        assert.equal((await api(authOf(p), 'GET', '/api/v1/auth/session')).body.restriction, 'mfa-enrollment');
      }
      // A browser still needs its CSRF token first.
      assertError(await send(s.url, 'POST', { path: '/api/v1/folders', json: { parentId: ghost.rootId, name: 'x' } }, authOf(browser, { csrf: false })), 403, 'CSRF_FAILED', 'no CSRF token');
      // Sign-out works while restricted.
      const throwaway = await signIn(s.url, 'carol');
      assert.equal((await api(authOf(throwaway), 'POST', '/api/v1/auth/logout')).status, 204);
      assertError(await send(s.url, 'GET', ROUTES['GET /api/v1/auth/session'].call(ghost), authOf(throwaway)), 401, 'UNAUTHENTICATED', 'signed out');

      // Turning 2FA on lifts the restriction from every session of the user.
      const setup = await api(authOf(sync), 'POST', '/api/v1/account/2fa/setup');
      assert.equal(setup.status, 200);
      now += 30_000;
      const enable = await api(authOf(sync), 'POST', '/api/v1/account/2fa/enable', { code: totpCode(setup.body.secret, now) });
      assert.equal(enable.status, 200, enable.text);
      for (const p of [sync, browser]) {
        assert.equal((await api(authOf(p), 'GET', '/api/v1/auth/session')).body.restriction, null);
        assert.equal((await api(authOf(p), 'GET', '/api/v1/items/root')).status, 200);
        assert.equal((await api(authOf(p), 'POST', '/api/v1/folders', { path: `from-${p.cookie ? 'browser' : 'sync'}` })).status, 201);
      }
      // And the next sign-in asks for the second factor.
      const next = await api(null, 'POST', '/api/v1/auth/login', { login: 'carol', password: TEST_PASSWORD });
      assert.equal(next.body.status, 'mfa-required');
    });

    async function sweep(label: string, auth: Auth): Promise<number> {
      let n = 0;
      for (const [key, route] of Object.entries(ROUTES)) {
        if (route.public) continue;
        const e = enrollment(key, route);
        if (!e) continue;
        const { method } = specPath(key);
        const call = route.call(ghost);
        assertAnswer(await send(s.url, method, call, auth), e, `${label} session pending 2FA enrollment: ${key}`);
        if (method === 'GET') assert.equal((await send(s.url, 'HEAD', call, auth)).status, e.status, `${label}: HEAD ${key}`);
        n++;
      }
      return n;
    }
  });
}
