/**
 * The small pieces every request shares: URLs under the server's base
 * address, an idle deadline (a request fails when nothing moves for
 * `timeoutMs`, not when a large transfer simply takes long), JSON answers,
 * and the public (unauthenticated) POSTs of signing in and refreshing.
 */
import { errorFromResponse, networkError, ApiError } from './api-error.ts';

export const DEFAULT_TIMEOUT_MS = 60_000;
export const DEFAULT_USER_AGENT = `coffer-sync/0.1.0 (node ${process.versions.node}; ${process.platform})`;

export type FetchFn = typeof fetch;

export function apiUrl(baseUrl: string, path: string, query?: Record<string, string | number | undefined>): string {
  const url = new URL(baseUrl.replace(/\/+$/, '') + path);
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
  return url.toString();
}

/** Path segment for an id (ids are opaque strings). */
export const seg = (id: string): string => encodeURIComponent(id);

/**
 * Aborts its signal when `kick()` was not called for `ms` (or when `outer`
 * aborts). Every byte sent or received kicks it.
 */
export class Deadline {
  readonly signal: AbortSignal;
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private ms: number;
  constructor(ms: number, outer?: AbortSignal) {
    this.ms = ms;
    this.signal = outer ? AbortSignal.any([outer, this.controller.signal]) : this.controller.signal;
    this.kick();
  }
  kick(): void {
    clearTimeout(this.timer);
    if (this.controller.signal.aborted) return;
    this.timer = setTimeout(() => this.controller.abort(new DOMException(`nothing moved for ${this.ms} ms`, 'TimeoutError')), this.ms);
    this.timer.unref();
  }
  /** A new idle window from now (a push channel is quiet for long stretches). */
  setIdle(ms: number): void {
    this.ms = ms;
    this.kick();
  }
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
  get expired(): boolean {
    return this.controller.signal.aborted;
  }
}

/** Reads a 2xx answer as JSON (204 and an empty body give undefined). */
export async function readJson<T>(res: Response, what: string): Promise<T> {
  let text: string;
  try {
    text = await res.text();
  } catch (e) {
    throw networkError(e, what);
  }
  if (res.status === 204 || text === '') return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ApiError({ code: 'BAD_RESPONSE', status: res.status, message: `${what}: the server's answer is not JSON` });
  }
}

export interface PublicCallOptions {
  fetch?: FetchFn;
  timeoutMs?: number;
  userAgent?: string;
}

/** A POST without credentials (sign-in, 2FA, token refresh). Not retried: each of these may have taken effect. */
export async function postPublic<T>(baseUrl: string, path: string, body: unknown, opts: PublicCallOptions = {}): Promise<{ body: T; headers: Headers }> {
  const what = `POST ${path}`;
  const deadline = new Deadline(opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  try {
    let res: Response;
    try {
      res = await (opts.fetch ?? fetch)(apiUrl(baseUrl, path), {
        method: 'POST', signal: deadline.signal, body: JSON.stringify(body),
        headers: { 'content-type': 'application/json', accept: 'application/json', 'user-agent': opts.userAgent ?? DEFAULT_USER_AGENT },
      });
    } catch (e) {
      throw networkError(e, what);
    }
    if (!res.ok) throw await errorFromResponse(res);
    return { body: await readJson<T>(res, what), headers: res.headers };
  } finally {
    deadline.stop();
  }
}
