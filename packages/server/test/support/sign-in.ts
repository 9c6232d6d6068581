/** Signing in over real HTTP, as a sync client (bearer tokens) or a browser (cookie + CSRF token). */
export interface SyncSignIn {
  status: 'signed-in';
  accessToken: string;
  refreshToken: string;
  accessExpiresAt: number;
  deviceKey: string;
  user: { id: string; username: string };
  session: { id: string; deviceId: string; deviceName: string; kind: string; persistent: boolean; idleTimeoutSeconds: number; mfaEnrollmentRequired: boolean };
}

/** POST /api/v1/auth/login as a sync client; throws unless it signed in. */
export async function signInSync(url: string, login: string, password: string, extra: Record<string, unknown> = {}): Promise<SyncSignIn> {
  const res = await fetch(`${url}/api/v1/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ login, password, client: 'sync', ...extra }),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`sign-in as ${login} failed: ${res.status} ${text}`);
  const body = JSON.parse(text) as SyncSignIn;
  if (body.status !== 'signed-in') throw new Error(`sign-in as ${login} needs a second factor: ${text}`);
  return body;
}

/** The access token of a fresh sync-client session. */
export async function getToken(url: string, login: string, password: string): Promise<string> {
  return (await signInSync(url, login, password)).accessToken;
}

export interface BrowserSession {
  cookie: string;
  deviceCookie: string;
  csrfToken: string;
  setCookie: string[];
  body: any;
}

/** POST /api/v1/auth/login as a browser; returns the cookies to send back and the CSRF token. */
export async function signInBrowser(url: string, login: string, password: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}): Promise<BrowserSession> {
  const res = await fetch(`${url}/api/v1/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ login, password, client: 'browser', ...extra }),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`browser sign-in as ${login} failed: ${res.status} ${text}`);
  const setCookie = res.headers.getSetCookie();
  const pick = (name: string) => setCookie.find((c) => c.startsWith(`${name}=`))?.split(';')[0] ?? '';
  const body = JSON.parse(text);
  return { cookie: pick('coffer_session'), deviceCookie: pick('coffer_device'), csrfToken: body.csrfToken, setCookie, body };
}
