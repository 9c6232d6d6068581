/** Device login over real HTTP, as the sync client does it: start a request, poll for the session. */

export interface DeviceAuthorization {
  deviceCode: string;
  userCode: string;
  verificationUri: string;
  verificationUriComplete: string;
  expiresIn: number;
  interval: number;
}

export interface Answer {
  status: number;
  body: any;
  headers: Headers;
}

async function post(url: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(url + path, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body), signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  let parsed: any = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = text; }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** POST /api/v1/auth/device; throws unless it answered 200. */
export async function startDeviceLogin(url: string, body: { deviceName: string; platform?: string }, headers: Record<string, string> = {}): Promise<DeviceAuthorization> {
  const r = await post(url, '/api/v1/auth/device', body, headers);
  if (r.status !== 200) throw new Error(`device login request failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body as DeviceAuthorization;
}

/** One poll of POST /api/v1/auth/device/token. */
export function pollDeviceLogin(url: string, deviceCode: string, extra: { deviceKey?: string } = {}, headers: Record<string, string> = {}): Promise<Answer> {
  return post(url, '/api/v1/auth/device/token', { deviceCode, ...extra }, headers);
}
