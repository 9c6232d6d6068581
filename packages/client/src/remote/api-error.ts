/**
 * Every failure the remote layer reports is an ApiError with a stable code:
 * the server's own `{ error: { code, message, details, requestId } }`, or a
 * client-side code for what never got an answer (NETWORK, status 0) and for
 * what the client decides itself (SESSION_REVOKED, LOCAL_FILE_CHANGED,
 * CONTENT_MISMATCH…). Callers branch on `code`, never on messages.
 *
 * `isRetryable` is the one rule for "the same request may succeed later":
 * no answer at all, 503, 408, 429 only when the server says how long to
 * wait, and 500 (or a proxy's 502/504) only for requests safe to repeat.
 */

export interface ApiErrorInit {
  code: string;
  status: number;
  message?: string;
  details?: Record<string, unknown>;
  requestId?: string;
  /** How long the server asked us to wait (Retry-After or details.retryAfterSeconds), in ms. */
  retryAfterMs?: number;
  cause?: unknown;
}

export class ApiError extends Error {
  readonly code: string;
  /** The HTTP status; 0 when there was no answer (or the failure is local). */
  readonly status: number;
  readonly details?: Record<string, unknown>;
  readonly requestId?: string;
  readonly retryAfterMs?: number;

  constructor(init: ApiErrorInit) {
    super(init.message ?? init.code, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'ApiError';
    this.code = init.code;
    this.status = init.status;
    if (init.details !== undefined) this.details = init.details;
    if (init.requestId !== undefined) this.requestId = init.requestId;
    if (init.retryAfterMs !== undefined) this.retryAfterMs = init.retryAfterMs;
  }
}

export function isApiError(e: unknown, code?: string): e is ApiError {
  return e instanceof ApiError && (code === undefined || e.code === code);
}

/** Network error codes that mean the request never reached the server: repeating it is safe even for a POST. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

/** A fetch that threw (or timed out) as ApiError NETWORK; `details.notSent` when the server surely saw nothing. */
export function networkError(e: unknown, what: string): ApiError {
  if (e instanceof ApiError) return e;
  const errno = causeCode(e);
  const timedOut = (e as Error)?.name === 'TimeoutError';
  const reason = timedOut ? 'no answer in time' : errno ?? (e as Error)?.message ?? String(e);
  return new ApiError({
    code: 'NETWORK', status: 0, cause: e,
    message: `${what}: the server could not be reached (${reason})`,
    details: { ...(errno ? { errno } : {}), ...(timedOut ? { timeout: true } : {}), ...(errno && NOT_SENT.has(errno) ? { notSent: true } : {}) },
  });
}

function causeCode(e: unknown): string | undefined {
  for (let x = e as { code?: unknown; cause?: unknown } | undefined, depth = 0; x && depth < 5; x = x.cause as typeof x, depth++) {
    if (typeof x.code === 'string') return x.code;
  }
  return undefined;
}

/** The error a non-2xx answer stands for; reads (and so consumes) the body. */
export async function errorFromResponse(res: Response): Promise<ApiError> {
  let text = '';
  try {
    text = await res.text();
  } catch {
    // The body was cut off: the status still says what happened.
  }
  let body: { error?: { code?: unknown; message?: unknown; details?: unknown; requestId?: unknown } } | null = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null; // a proxy's HTML page, say
  }
  const err = body && typeof body === 'object' ? body.error : undefined;
  const details = err && typeof err.details === 'object' && err.details !== null ? err.details as Record<string, unknown> : undefined;
  return new ApiError({
    code: typeof err?.code === 'string' ? err.code : `HTTP_${res.status}`,
    status: res.status,
    message: typeof err?.message === 'string' ? err.message : `The server answered ${res.status} ${res.statusText}`.trim(),
    details,
    requestId: typeof err?.requestId === 'string' ? err.requestId : undefined,
    retryAfterMs: retryAfter(res.headers.get('retry-after'), details),
  });
}

function retryAfter(header: string | null, details: Record<string, unknown> | undefined): number | undefined {
  const seconds = details?.retryAfterSeconds;
  if (typeof seconds === 'number' && seconds >= 0) return seconds * 1000;
  if (header === null) return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/**
 * Whether repeating the same request may succeed. `idempotent`: the request
 * is safe to repeat even if the server did (part of) it already.
 */
export function isRetryable(e: unknown, opts: { idempotent?: boolean } = {}): boolean {
  if (!(e instanceof ApiError)) return false;
  const idempotent = opts.idempotent ?? true;
  if (e.code === 'NETWORK') return idempotent || e.details?.notSent === true;
  switch (e.status) {
    case 503: case 408: return true; // refused before any work was done
    case 429: return e.retryAfterMs !== undefined;
    case 500: case 502: case 504: return idempotent; // the server may have done it (a proxy's 502/504 hides whether)
    default: return false;
  }
}
