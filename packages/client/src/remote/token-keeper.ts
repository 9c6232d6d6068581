/**
 * Keeps a sync client's access token usable. The server rotates the
 * refresh token on every use and revokes the whole session when one is
 * used twice (it must assume the token was copied), so renewal is careful:
 *
 *   - single flight: all requests of this client waiting during a renewal
 *     get the one new pair;
 *   - the new pair is saved through the CredentialStore before any request
 *     uses it (a crash leaves the new pair, never only the spent one);
 *   - a refresh token that got an answer is never sent again;
 *   - before refreshing, the store is read again — under the store's lock
 *     when it has one — and a pair another client of the same store
 *     (another process) already obtained is adopted instead of spending a
 *     token twice.
 *
 * A refused refresh (401) means the session is over: SESSION_REVOKED,
 * status 401. A refresh that got no answer at all may be sent again: if
 * the server never saw it, that works; if it did, the new pair is lost with
 * the answer and the session is over for this client either way.
 *
 * A token that already looks expiring when it arrives (a skewed clock, very
 * short tokens) is used until the server refuses it, rather than renewed
 * before every request.
 */
import { ApiError } from './api-error.ts';
import type { CredentialStore, Credentials } from './credentials.ts';
import { postPublic, type PublicCallOptions } from './http.ts';

/** Renew the access token when it expires within this long. */
export const REFRESH_MARGIN_MS = 60_000;

const REVOKED_MESSAGE = 'This device was signed out of the account (or its sign-in expired); sign in again. Local files are kept.';

export function sessionRevoked(cause?: ApiError, message = REVOKED_MESSAGE): ApiError {
  return new ApiError({
    code: 'SESSION_REVOKED', status: 401, message, cause,
    ...(cause ? { details: { serverCode: cause.code, serverMessage: cause.message }, requestId: cause.requestId } : {}),
  });
}

export class TokenKeeper {
  private readonly store: CredentialStore;
  private readonly baseUrl: string;
  private readonly now: () => number;
  private readonly http: PublicCallOptions;
  private creds: Credentials | null = null;
  private loading: Promise<Credentials> | null = null;
  private renewing: Promise<Credentials> | null = null;
  /** Refresh tokens that got an answer: never sent again. */
  private readonly spent = new Set<string>();
  /** An access token that already looked expiring when it arrived: renewed only once refused. */
  private noEarlyRenewalFor: string | null = null;

  constructor(store: CredentialStore, baseUrl: string, now: () => number, http: PublicCallOptions) {
    this.store = store;
    this.baseUrl = baseUrl;
    this.now = now;
    this.http = http;
  }

  /** Credentials to send now: renewed first when the access token is about to expire. */
  async usable(): Promise<Credentials> {
    if (this.renewing) return this.renewing;
    const c = await this.current();
    if (this.renewing) return this.renewing;
    if (c.accessExpiresAt - this.now() > REFRESH_MARGIN_MS || c.accessToken === this.noEarlyRenewalFor) return c;
    return this.renew(c);
  }

  /** The server refused `used` (401): renew, unless that already happened meanwhile. */
  async refused(used: Credentials): Promise<void> {
    await this.renew(used);
  }

  /** The device key, for after a sign-out. */
  async deviceKey(): Promise<string | undefined> {
    return (this.creds ?? await this.store.load())?.deviceKey;
  }

  /** Signed out: forget the credentials here and in the store. */
  async forget(): Promise<void> {
    this.creds = null;
    await this.store.clear();
  }

  private async current(): Promise<Credentials> {
    if (this.creds) return this.creds;
    this.loading ??= this.store.load().then((c) => {
      if (!c) throw new ApiError({ code: 'NOT_SIGNED_IN', status: 0, message: 'This device is not signed in (no credentials are stored); sign in first.' });
      this.creds ??= c;
      return this.creds;
    }).finally(() => { this.loading = null; });
    return this.loading;
  }

  /** Single flight: every caller during a renewal gets the same new pair. */
  private renew(stale: Credentials): Promise<Credentials> {
    if (this.renewing) return this.renewing;
    if (this.creds && this.creds.accessToken !== stale.accessToken) return Promise.resolve(this.creds);
    const renewal = () => this.renewNow(stale);
    this.renewing = (this.store.withLock ? this.store.withLock(renewal) : renewal()).finally(() => { this.renewing = null; });
    return this.renewing;
  }

  private async renewNow(stale: Credentials): Promise<Credentials> {
    const stored = await this.store.load();
    if (!stored) throw sessionRevoked(undefined, 'This device was signed out here (its credentials were removed); sign in again. Local files are kept.');
    let base = stale;
    if (stored.refreshToken !== stale.refreshToken && !this.spent.has(stored.refreshToken)) {
      // Another client of the same store already renewed: take its pair rather than spend a token twice.
      this.creds = stored;
      if (stored.accessToken !== stale.accessToken && stored.accessExpiresAt - this.now() > REFRESH_MARGIN_MS) return stored;
      base = stored;
    }
    if (this.spent.has(base.refreshToken)) throw sessionRevoked(undefined, 'This device\'s refresh token was already used and no newer one is stored; sign in again. Local files are kept.');
    let pair: { accessToken: string; refreshToken: string; accessExpiresAt: number };
    try {
      ({ body: pair } = await postPublic<typeof pair>(this.baseUrl, '/api/v1/auth/refresh', { refreshToken: base.refreshToken }, this.http));
    } catch (e) {
      if (!(e instanceof ApiError && e.code === 'NETWORK')) this.spent.add(base.refreshToken);
      if (e instanceof ApiError && e.status === 401) throw sessionRevoked(e);
      throw e;
    }
    this.spent.add(base.refreshToken);
    const next: Credentials = { ...base, accessToken: pair.accessToken, refreshToken: pair.refreshToken, accessExpiresAt: pair.accessExpiresAt };
    if (next.accessExpiresAt - this.now() <= REFRESH_MARGIN_MS) this.noEarlyRenewalFor = next.accessToken;
    try {
      await this.store.save(next); // durable before anything uses it
    } finally {
      this.creds = next; // the old refresh token is spent even if saving failed: keep the new pair in memory at least
    }
    return next;
  }
}
