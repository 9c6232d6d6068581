/**
 * The one table of stable error codes. Services throw `CofferError(code)`;
 * each adapter (REST, later WebDAV and tus) renders it in its own way.
 * A code, once published, never changes meaning: clients branch on it.
 */
export const ERRORS = {
  BAD_REQUEST: { status: 400, message: 'The request is malformed.' },
  VALIDATION_FAILED: { status: 400, message: 'A field of the request is missing or has the wrong type.' },
  INVALID_NAME: { status: 400, message: 'The name is not allowed.' },
  PATH_TOO_LONG: { status: 400, message: 'The path is longer than the server allows.' },
  INVALID_RANGE: { status: 416, message: 'The requested range is not satisfiable.' },
  RESYNC_REQUIRED: { status: 410, message: 'This cursor cannot be continued (history expired, or it belongs to another server or drive); list the drive again and continue from a fresh cursor.' },
  UNAUTHENTICATED: { status: 401, message: 'Sign in first: no valid credentials were sent.' },
  FORBIDDEN: { status: 403, message: 'You are not allowed to do this.' },
  WRONG_CREDENTIALS: { status: 401, message: 'Wrong username or password.' },
  MFA_REQUIRED: { status: 401, message: 'Enter the code from your authenticator app (or a recovery code) to finish signing in.' },
  WRONG_MFA_CODE: { status: 401, message: 'The code is wrong, expired or already used.' },
  MFA_ENROLLMENT_REQUIRED: { status: 403, message: 'This server requires two-factor authentication: set it up before using your account.' },
  MFA_ALREADY_ENABLED: { status: 409, message: 'Two-factor authentication is already on.' },
  MFA_NOT_ENABLED: { status: 409, message: 'Two-factor authentication is not on.' },
  CSRF_FAILED: { status: 403, message: 'The X-CSRF-Token header is missing or does not match this session.' },
  DEVICE_WIPE_REQUESTED: { status: 403, message: 'This device is to be wiped: fetch the wipe request, remove what is safely in the cloud, and confirm.' },
  SIGNUP_DISABLED: { status: 403, message: 'Open sign-up is turned off on this server; ask an administrator for an account.' },
  AUTHORIZATION_PENDING: { status: 400, message: 'The sign-in request has not been approved yet: keep polling at the interval you were given while the user approves it in a browser.' },
  SLOW_DOWN: { status: 400, message: 'Polling too fast: wait longer between requests (details.interval is the new interval in seconds, 5 more than before).' },
  ACCESS_DENIED: { status: 400, message: 'The user denied this sign-in request in the browser; start a new one if that was a mistake.' },
  DEVICE_CODE_EXPIRED: { status: 400, message: 'This sign-in request expired before it was approved; start a new one.' },
  INVALID_DEVICE_CODE: { status: 400, message: 'This device code is unknown or was already exchanged for a session; start a new sign-in request.' },
  UNKNOWN_USER_CODE: { status: 404, message: 'No device is waiting for this code; check the code your device shows and type it again.' },
  USER_CODE_EXPIRED: { status: 410, message: 'This code has expired; start the sign-in on your device again to get a new one.' },
  USER_CODE_USED: { status: 409, message: 'This code was already approved or denied; start the sign-in on your device again if you need a new one.' },
  INVALID_RESET_TOKEN: { status: 400, message: 'This password reset link is invalid, expired or already used; ask for a new one.' },
  TOO_MANY_ATTEMPTS: { status: 429, message: 'Too many failed attempts; wait before trying again (details.retryAfterSeconds), or reset your password.' },
  NOT_FOUND: { status: 404, message: 'No such item.' },
  ROUTE_NOT_FOUND: { status: 404, message: 'No such endpoint.' },
  METHOD_NOT_ALLOWED: { status: 405, message: 'This method is not allowed here.' },
  NAME_CONFLICT: { status: 409, message: 'An item with this name already exists in the folder.' },
  VERSION_CONFLICT: { status: 412, message: 'The item changed since you last read it.' },
  NOT_A_FOLDER: { status: 409, message: 'The target is not a folder.' },
  NOT_A_FILE: { status: 409, message: 'The item is not a file.' },
  MOVE_INTO_ITSELF: { status: 409, message: 'A folder cannot be moved or copied into itself.' },
  ROOT_IMMUTABLE: { status: 409, message: 'The root folder cannot be moved, renamed or deleted.' },
  NOT_IN_TRASH: { status: 409, message: 'The item is not in the recycle bin.' },
  PAYLOAD_TOO_LARGE: { status: 413, message: 'The request body is larger than the server allows.' },
  HEADERS_TOO_LARGE: { status: 431, message: 'The request headers are larger than the server allows.' },
  REQUEST_TIMEOUT: { status: 408, message: 'The request took too long to arrive.' },
  QUOTA_EXCEEDED: { status: 507, message: 'Not enough storage quota left for this upload.' },
  CHUNKS_MISSING: { status: 409, message: 'The commit names chunks the server does not hold for you; upload them (details.missing) and commit again.' },
  BAD_CHUNK_FRAMING: { status: 400, message: 'The chunk upload is not a sequence of [4-byte big-endian length][bytes] frames; complete frames before the error were stored.' },
  CHUNK_TOO_LARGE: { status: 400, message: 'A chunk is empty or larger than the protocol maximum (1 MiB); complete frames before it were stored.' },
  UPLOAD_INCOMPLETE: { status: 400, message: 'The upload ended before all announced bytes arrived.' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'This content type is not accepted here.' },
  USER_EXISTS: { status: 409, message: 'A user with this name or e-mail address already exists.' },
  WEAK_PASSWORD: { status: 400, message: 'The password is too short or too common.' },
  RATE_LIMITED: { status: 429, message: 'Too many requests; try again later.' },
  STORAGE_UNAVAILABLE: { status: 503, message: 'File storage is unavailable; try again later.' },
  SHUTTING_DOWN: { status: 503, message: 'The server is shutting down; try again shortly.' },
  INTERNAL: { status: 500, message: 'Something went wrong on the server.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

/** The JSON body of every error response. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; requestId?: string; details?: Record<string, unknown> };
}

/** A typed, expected failure. `details` is safe to show to the caller. */
export class CofferError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details?: Record<string, unknown>;
  constructor(code: ErrorCode, message?: string, details?: Record<string, unknown>) {
    super(message ?? ERRORS[code].message);
    this.name = 'CofferError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.details = details;
  }
}

export function isCofferError(e: unknown): e is CofferError {
  return e instanceof CofferError;
}
