/**
 * Signing a sync client in: password first (POST /api/v1/auth/login with
 * client "sync"), then — when the account has two-factor authentication —
 * a code or recovery code with the challenge (POST /api/v1/auth/login/2fa).
 * The result carries the credentials to hand to a CredentialStore; nothing
 * here keeps them. Failures are ApiErrors with the server's codes
 * (WRONG_CREDENTIALS, WRONG_MFA_CODE, TOO_MANY_ATTEMPTS with a retry delay…).
 * Neither call is retried: a repeated attempt counts against the throttle.
 */
import type { Credentials } from './credentials.ts';
import { postPublic, type PublicCallOptions } from './http.ts';

export interface LoginInput {
  /** Username or e-mail address. */
  login: string;
  password: string;
  /** How this device appears in the devices list. */
  deviceName?: string;
  platform?: string;
  /** The key this device got at its last sign-in: it keeps its entry in the devices list. */
  deviceKey?: string;
}

export interface SignedIn {
  status: 'signed-in';
  credentials: Credentials;
  user: { id: string; username: string };
  /** The server requires 2FA and the account has none yet: most calls answer 403 MFA_ENROLLMENT_REQUIRED until it is set up. */
  mfaEnrollmentRequired: boolean;
}

export interface MfaRequired {
  status: 'mfa-required';
  /** Send it back with a code to completeLogin2fa. */
  challenge: string;
  challengeExpiresAt?: number;
}

export type LoginResult = SignedIn | MfaRequired;

/** The server's SignInResult, as far as a sync client reads it. */
interface SignInAnswer {
  status: 'signed-in' | 'mfa-required';
  challenge?: string;
  challengeExpiresAt?: number;
  user?: { id: string; username: string };
  session?: { id: string; deviceId: string; mfaEnrollmentRequired?: boolean };
  deviceKey?: string;
  accessToken?: string;
  refreshToken?: string;
  accessExpiresAt?: number;
}

export async function login(baseUrl: string, input: LoginInput, opts?: PublicCallOptions): Promise<LoginResult> {
  const { body } = await postPublic<SignInAnswer>(baseUrl, '/api/v1/auth/login', {
    login: input.login, password: input.password, client: 'sync',
    ...(input.deviceName !== undefined ? { deviceName: input.deviceName } : {}),
    ...(input.platform !== undefined ? { platform: input.platform } : {}),
    ...(input.deviceKey !== undefined ? { deviceKey: input.deviceKey } : {}),
  }, opts);
  return toResult(body);
}

export async function completeLogin2fa(baseUrl: string, input: { challenge: string; code?: string; recoveryCode?: string }, opts?: PublicCallOptions): Promise<SignedIn> {
  if ((input.code === undefined) === (input.recoveryCode === undefined)) throw new TypeError('completeLogin2fa: give either code or recoveryCode');
  const { body } = await postPublic<SignInAnswer>(baseUrl, '/api/v1/auth/login/2fa', {
    challenge: input.challenge,
    ...(input.code !== undefined ? { code: input.code } : { recoveryCode: input.recoveryCode }),
  }, opts);
  const result = toResult(body);
  if (result.status !== 'signed-in') throw new Error('The server asked for a second factor again after the second factor.');
  return result;
}

/** POST /api/v1/auth/device: what to show the user (docs/sync-protocol.md, "Device login"). */
export interface DeviceLoginStart {
  deviceCode: string;
  userCode: string;
  verificationUri: string;
  verificationUriComplete: string;
  expiresIn: number;
  interval: number;
}

export async function startDeviceLogin(baseUrl: string, input: { deviceName: string; platform?: string }, opts?: PublicCallOptions): Promise<DeviceLoginStart> {
  return (await postPublic<DeviceLoginStart>(baseUrl, '/api/v1/auth/device', input, opts)).body;
}

/**
 * Polls until the user approves in a browser (signed in there, with 2FA if on): waits `interval`
 * seconds between polls and more when told to slow down; throws ApiError ACCESS_DENIED,
 * DEVICE_CODE_EXPIRED or INVALID_DEVICE_CODE otherwise.
 */
export async function pollDeviceLogin(baseUrl: string, start: DeviceLoginStart, opts: PublicCallOptions & { deviceKey?: string; sleep?: (ms: number) => Promise<void> } = {}): Promise<SignedIn> {
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  let interval = start.interval;
  for (;;) {
    await sleep(interval * 1000);
    try {
      const { body } = await postPublic<SignInAnswer>(baseUrl, '/api/v1/auth/device/token', { deviceCode: start.deviceCode, ...(opts.deviceKey ? { deviceKey: opts.deviceKey } : {}) }, opts);
      const result = toResult(body);
      if (result.status === 'signed-in') return result;
    } catch (e) {
      const code = (e as { code?: string }).code;
      const details = (e as { details?: { interval?: number } }).details;
      if (code === 'SLOW_DOWN') interval = details?.interval ?? interval + 5;
      else if (code !== 'AUTHORIZATION_PENDING' && code !== 'NETWORK') throw e;
    }
  }
}

function toResult(b: SignInAnswer): LoginResult {
  if (b.status === 'mfa-required') {
    if (!b.challenge) throw new Error('The server asked for a second factor but sent no challenge.');
    return { status: 'mfa-required', challenge: b.challenge, ...(b.challengeExpiresAt !== undefined ? { challengeExpiresAt: b.challengeExpiresAt } : {}) };
  }
  if (!b.accessToken || !b.refreshToken || typeof b.accessExpiresAt !== 'number' || !b.user) {
    throw new Error('The server signed in without issuing sync-client tokens (is it a Coffer server?).');
  }
  const credentials: Credentials = { accessToken: b.accessToken, refreshToken: b.refreshToken, accessExpiresAt: b.accessExpiresAt };
  if (b.deviceKey) credentials.deviceKey = b.deviceKey;
  if (b.session) {
    credentials.sessionId = b.session.id;
    credentials.deviceId = b.session.deviceId;
  }
  return { status: 'signed-in', credentials, user: { id: b.user.id, username: b.user.username }, mfaEnrollmentRequired: b.session?.mfaEnrollmentRequired ?? false };
}
