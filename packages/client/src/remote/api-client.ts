/**
 * The sync client's typed HTTP client for the Coffer API (docs/openapi.json,
 * docs/sync-protocol.md). Every failure is an ApiError with a stable code.
 *
 * Credentials. Every request carries `Authorization: Bearer <access token>`,
 * renewed when it expires within a minute and once after a 401 — then the
 * request is sent once more (see token-keeper.ts: renewals are single
 * flight and saved before use, because the server revokes the session when
 * a refresh token is used twice). A refused renewal ends in ApiError
 * SESSION_REVOKED, status 401 ("this device was signed out; sign in
 * again"): callers stop and keep their local files. 403
 * DEVICE_WIPE_REQUESTED passes through unchanged.
 *
 * Retries. Requests safe to repeat (GETs, the pending-changes PUT, and the
 * chunk protocol's session, missing, chunks and abandon calls) are retried
 * with exponential back-off (injected sleep, at most `maxAttempts`) on
 * retryable errors (isRetryable). The others (mkdir, move, trash, commits,
 * wipe confirmation, logout) only when the request surely never left
 * (connection refused, unknown host): the server may have done them. `timeoutMs` is an idle timeout: a
 * request fails when no byte moved for that long, so large transfers are
 * never cut for being large.
 *
 * Streams. download() and putChunks() stream; nothing buffers a whole file.
 * events() parses the push channel's Server-Sent Events itself.
 */
import { ApiError, errorFromResponse, isRetryable, networkError } from './api-error.ts';
import type { CredentialStore } from './credentials.ts';
import { framedBody, iteratorOf, type ChunkSource, checkChunk } from './frames.ts';
import { apiUrl, DEFAULT_TIMEOUT_MS, DEFAULT_USER_AGENT, Deadline, readJson, seg, type FetchFn } from './http.ts';
import { parseSse } from './sse.ts';
import { sessionRevoked, TokenKeeper } from './token-keeper.ts';
import type {
  ChangePage, CommitFile, DriveInfo, Me, PushEvent, RemoteItem, UploadSession, WipeReport, WipeStatus,
} from './types.ts';

export interface ApiClientOptions {
  /** The server's address, e.g. https://drive.example.org (a path prefix is kept). */
  baseUrl: string;
  credentials: CredentialStore;
  fetch?: FetchFn;
  /** Idle timeout of one request (no byte moved), default 60 s. */
  timeoutMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** The clock compared with accessExpiresAt (ms). */
  now?: () => number;
  userAgent?: string;
  /** Attempts of a retryable request, default 5. */
  maxAttempts?: number;
}

/** Most hashes one `missing` request may ask about (server: MAX_MISSING_QUERY). */
export const MISSING_BATCH = 10_000;
/** Page size of folder listings (the server's maximum). */
export const LIST_PAGE = 1000;
/** Folders listed at once by listTree. */
const LIST_CONCURRENCY = 4;
/** The push channel pings every 25 s; this long without a byte means the connection is dead. */
const PUSH_IDLE_MS = 75_000;
const BACKOFF_BASE_MS = 250;
const BACKOFF_MAX_MS = 10_000;
/** A server asking for a longer pause than this is not waited for: the error goes to the caller. */
const MAX_RETRY_AFTER_MS = 60_000;

interface RequestSpec {
  method: string;
  path: string;
  query?: Record<string, string | number | undefined>;
  /** A JSON body (sent again on a retry). */
  json?: unknown;
  /** A body sent only once (a stream): no retry, and a 401 is passed on after renewing the token. */
  oneShot?: { body: ReadableStream<Uint8Array>; contentType: string; sourceError: () => unknown };
  /** Safe to repeat even if the server already did it. */
  idempotent: boolean;
  accept?: string;
  signal?: AbortSignal;
}

export interface Download {
  /** The bytes, as they arrive; a connection cut mid-way is resumed with a range request (only while the version is unchanged). */
  body: AsyncIterable<Uint8Array>;
  size: number;
  /** The version's content ETag. */
  etag: string;
  /** The content hash, when the server says it (it does not today: compare with the item's contentHash). */
  contentHash?: string;
}

export interface CommitResult {
  /** What the file would have got on its own: 201 created, 200 new version, else an error status. */
  status: number;
  item?: RemoteItem;
  error?: ApiError;
}

export class ApiClient {
  readonly baseUrl: string;
  private readonly fetchFn: FetchFn;
  private readonly timeoutMs: number;
  private readonly sleepFn: (ms: number) => Promise<void>;
  private readonly userAgent: string;
  private readonly maxAttempts: number;

  private readonly tokens: TokenKeeper;

  constructor(opts: ApiClientOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
    this.fetchFn = opts.fetch ?? ((input, init) => fetch(input, init));
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.sleepFn = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.userAgent = opts.userAgent ?? DEFAULT_USER_AGENT;
    this.maxAttempts = Math.max(1, opts.maxAttempts ?? 5);
    this.tokens = new TokenKeeper(opts.credentials, this.baseUrl, opts.now ?? Date.now, { fetch: this.fetchFn, timeoutMs: this.timeoutMs, userAgent: this.userAgent });
  }

  // ---- drive, feed, listing -------------------------------------------------

  drive(): Promise<DriveInfo> {
    return this.json({ method: 'GET', path: '/api/v1/drive', idempotent: true });
  }

  me(): Promise<Me> {
    return this.json({ method: 'GET', path: '/api/v1/me', idempotent: true });
  }

  /** Changes after `cursor` ('latest': none, and the cursor of now). 410 RESYNC_REQUIRED surfaces as ApiError (details.reason). */
  changes(cursor: string, limit?: number): Promise<ChangePage> {
    return this.json({ method: 'GET', path: '/api/v1/changes', query: { cursor, limit }, idempotent: true });
  }

  stat(id: string): Promise<RemoteItem> {
    return this.json({ method: 'GET', path: `/api/v1/items/${seg(id)}`, idempotent: true });
  }

  /**
   * Every child of a folder, following the pages. The server pages by
   * offset, so a folder changing meanwhile can show an item twice (it is
   * kept once) or miss one (the change feed then brings it).
   */
  async listChildren(folderId: string): Promise<RemoteItem[]> {
    const byId = new Map<string, RemoteItem>();
    let cursor: string | undefined;
    do {
      const page = await this.json<{ items: RemoteItem[]; total: number; nextCursor: string | null }>({
        method: 'GET', path: `/api/v1/items/${seg(folderId)}/children`, query: { limit: LIST_PAGE, cursor }, idempotent: true,
      });
      for (const item of page.items) byId.set(item.id, item);
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    return [...byId.values()];
  }

  /** Every item below `rootId` (not the root itself), breadth-first: a folder always comes before its contents. */
  async listTree(rootId: string): Promise<RemoteItem[]> {
    const out: RemoteItem[] = [];
    let level = [rootId];
    while (level.length > 0) {
      const lists = await mapLimit(level, LIST_CONCURRENCY, (id) => this.listChildren(id));
      level = [];
      for (const items of lists) {
        for (const item of items) {
          out.push(item);
          if (item.kind === 'folder') level.push(item.id);
        }
      }
    }
    return out;
  }

  // ---- changing the tree ----------------------------------------------------

  mkdir(parentId: string, name: string): Promise<RemoteItem> {
    return this.json({ method: 'POST', path: '/api/v1/folders', json: { parentId, name }, idempotent: false });
  }

  /** Rename and/or move; with ifRev, 412 VERSION_CONFLICT if the item changed since. */
  move(id: string, to: { parentId?: string; name?: string; ifRev?: number }): Promise<RemoteItem> {
    return this.json({ method: 'PATCH', path: `/api/v1/items/${seg(id)}`, json: defined({ parentId: to.parentId, name: to.name, ifRev: to.ifRev }), idempotent: false });
  }

  /** To the recycle bin; with ifRev, 412 VERSION_CONFLICT if the item changed since. */
  trash(id: string, opts: { ifRev?: number } = {}): Promise<RemoteItem> {
    return this.json({ method: 'DELETE', path: `/api/v1/items/${seg(id)}`, query: { ifRev: opts.ifRev }, idempotent: false });
  }

  // ---- content ---------------------------------------------------------------

  /** Streams a file's current version. */
  async download(id: string, opts: { signal?: AbortSignal } = {}): Promise<Download> {
    const path = `/api/v1/items/${seg(id)}/content`;
    const identity = { 'accept-encoding': 'identity' }; // byte offsets must be the file's, for resuming
    const first = await this.request({ method: 'GET', path, idempotent: true, accept: 'application/octet-stream', signal: opts.signal }, identity);
    const length = first.res.headers.get('content-length');
    const size = length === null ? NaN : Number(length);
    const etag = first.res.headers.get('etag') ?? '';
    if (!Number.isSafeInteger(size)) {
      first.deadline.stop();
      await first.res.body?.cancel();
      throw new ApiError({ code: 'BAD_RESPONSE', status: first.res.status, message: `GET ${path}: no Content-Length` });
    }
    const self = this;
    async function* bytes(): AsyncGenerator<Uint8Array> {
      let current: { res: Response; deadline: Deadline } | null = first;
      let received = 0;
      for (let attempt = 1; ; attempt++) {
        try {
          const { res, deadline } = current!;
          try {
            for await (const piece of res.body as unknown as AsyncIterable<Uint8Array>) {
              deadline.kick();
              received += piece.length;
              if (received > size) throw new ApiError({ code: 'BAD_RESPONSE', status: 0, message: `GET ${path}: more bytes than announced` });
              yield piece;
            }
          } catch (e) {
            if (opts.signal?.aborted) throw opts.signal.reason;
            throw networkError(e, `GET ${path}`);
          } finally {
            deadline.stop(); // (leaving the loop early cancels the body, and so the connection)
          }
          if (received < size) throw networkError(new Error(`the download ended after ${received} of ${size} bytes`), `GET ${path}`);
          return;
        } catch (e) {
          current = null;
          if (!isApiError(e, 'NETWORK') || attempt >= self.maxAttempts || !etag) throw e;
          await self.backoff(attempt, e);
          // Resume where it broke, but only if the version is still the same (If-Range): a 200 means it changed.
          current = await self.request({ method: 'GET', path, idempotent: true, signal: opts.signal, accept: 'application/octet-stream' }, { ...identity, range: `bytes=${received}-`, 'if-range': etag });
          const range = current.res.headers.get('content-range');
          if (current.res.status !== 206 || !range?.startsWith(`bytes ${received}-`)) {
            current.deadline.stop();
            await current.res.body?.cancel().catch(() => {});
            throw new ApiError({ code: 'VERSION_CONFLICT', status: 412, message: `GET ${path}: the file changed while it was being downloaded` });
          }
        }
      }
    }
    return { body: bytes(), size, etag };
  }

  // ---- chunk protocol (docs/sync-protocol.md) ---------------------------------

  /** A new upload session (repeating this is harmless: an unused session just expires). */
  startUpload(): Promise<UploadSession> {
    return this.json({ method: 'POST', path: '/api/v1/uploads', idempotent: true });
  }

  /** The hashes the drive lacks, deduplicated, in request order; asked in batches of 10,000. */
  async missing(uploadId: string, hashes: readonly string[]): Promise<string[]> {
    const unique = [...new Set(hashes)];
    const out: string[] = [];
    for (let i = 0; i < unique.length; i += MISSING_BATCH) {
      const r = await this.json<{ missing: string[] }>({
        method: 'POST', path: `/api/v1/uploads/${seg(uploadId)}/missing`, json: { hashes: unique.slice(i, i + MISSING_BATCH) }, idempotent: true,
      });
      out.push(...r.missing);
    }
    return out;
  }

  /**
   * Sends chunks as one framed, streamed body; answers the hashes stored.
   * An array is sent again on a retryable failure; any other iterable is
   * read once (on failure, ask `missing` again and send what it lists —
   * complete frames the server got are kept). An error of the source itself
   * is thrown as it is.
   */
  async putChunks(uploadId: string, chunks: ChunkSource): Promise<string[]> {
    const path = `/api/v1/uploads/${seg(uploadId)}/chunks`;
    if (Array.isArray(chunks)) {
      if (chunks.length === 0) return [];
      for (const c of chunks) checkChunk(c);
      let renewed = false;
      return this.withRetries(true, async () => {
        try {
          return await this.putChunksOnce(path, chunks[Symbol.iterator](), undefined);
        } catch (e) {
          // Refused with a token that has since been renewed: an array can be sent again.
          if (renewed || !(e instanceof ApiError) || e.status !== 401 || e.code === 'SESSION_REVOKED') throw e;
          renewed = true;
          return await this.putChunksOnce(path, chunks[Symbol.iterator](), undefined);
        }
      });
    }
    const it = iteratorOf(chunks);
    const first = await it.next();
    if (first.done) return [];
    return this.putChunksOnce(path, it, first.value);
  }

  private async putChunksOnce(path: string, it: AsyncIterator<Uint8Array> | Iterator<Uint8Array>, first: Uint8Array | undefined): Promise<string[]> {
    let kick = () => {};
    const framed = framedBody(it, first, () => kick());
    try {
      const { res, deadline } = await this.request({
        method: 'PUT', path, idempotent: true,
        oneShot: { body: framed.stream, contentType: 'application/octet-stream', sourceError: () => framed.sourceError },
      }, undefined, (d) => { kick = () => d.kick(); });
      try {
        return (await readJson<{ stored: string[] }>(res, `PUT ${path}`)).stored;
      } finally {
        deadline.stop();
      }
    } finally {
      await closeIterator(it);
    }
  }

  /** Commits one file (exactly the server's FileCommit, plus keepSession). 201 created / 200 new version: the item. */
  commit(uploadId: string, file: CommitFile & { keepSession?: boolean }): Promise<RemoteItem> {
    return this.json({ method: 'POST', path: `/api/v1/uploads/${seg(uploadId)}/commit`, json: file, idempotent: false });
  }

  /** Commits many files; one result per file in request order (a failed file changed nothing). */
  async commitBatch(uploadId: string, files: CommitFile[], opts: { keepSession?: boolean } = {}): Promise<CommitResult[]> {
    const r = await this.json<{ results: { status: number; item?: RemoteItem; error?: { code: string; message: string; details?: Record<string, unknown> } }[] }>({
      method: 'POST', path: `/api/v1/uploads/${seg(uploadId)}/commit-batch`, json: defined({ files, keepSession: opts.keepSession }), idempotent: false,
    });
    return r.results.map((x) => ({
      status: x.status,
      ...(x.item ? { item: x.item } : {}),
      ...(x.error ? { error: new ApiError({ code: x.error.code, status: x.status, message: x.error.message, details: x.error.details }) } : {}),
    }));
  }

  /** Ends a session; one that already ended (404) is fine. */
  async abandonUpload(uploadId: string): Promise<void> {
    try {
      await this.json({ method: 'DELETE', path: `/api/v1/uploads/${seg(uploadId)}`, idempotent: true });
    } catch (e) {
      if (!isApiError(e, 'NOT_FOUND')) throw e;
    }
  }

  // ---- this device -----------------------------------------------------------

  async reportPendingChanges(n: number): Promise<void> {
    await this.json({ method: 'PUT', path: '/api/v1/device/pending-changes', json: { pendingChanges: Math.max(0, Math.floor(n)) }, idempotent: true });
  }

  wipeStatus(): Promise<WipeStatus> {
    return this.json({ method: 'GET', path: '/api/v1/device/wipe', idempotent: true });
  }

  /** Reports what the wipe removed and kept; the device's credentials stop working afterwards. */
  async confirmWipe(report: WipeReport): Promise<void> {
    await this.json({ method: 'POST', path: '/api/v1/device/wipe/confirm', json: report, idempotent: false });
  }

  /**
   * Signs this session out and forgets the credentials (already signed out
   * is fine). Answers the device key, to keep for the next sign-in so the
   * device keeps its entry in the devices list.
   */
  async logout(): Promise<{ deviceKey?: string }> {
    const deviceKey = await this.tokens.deviceKey();
    try {
      await this.json({ method: 'POST', path: '/api/v1/auth/logout', idempotent: false });
    } catch (e) {
      if (!isApiError(e, 'SESSION_REVOKED') && !isApiError(e, 'NOT_SIGNED_IN')) throw e;
    }
    await this.tokens.forget();
    return deviceKey ? { deviceKey } : {};
  }

  // ---- push --------------------------------------------------------------------

  /**
   * The push channel: `ready` (data {cursor, position}) at connect, then
   * `changed` (data {position}) whenever the drive's feed moves. Ends when
   * the server closes the stream or `signal` aborts; a `revoked` event (or a
   * refused sign-in) ends it with SESSION_REVOKED.
   */
  async *events(signal?: AbortSignal): AsyncGenerator<PushEvent> {
    let opened: { res: Response; deadline: Deadline };
    try {
      opened = await this.request({ method: 'GET', path: '/api/v1/changes/stream', idempotent: true, accept: 'text/event-stream', signal });
    } catch (e) {
      if (signal?.aborted) return;
      throw e;
    }
    const { res, deadline } = opened;
    deadline.setIdle(Math.max(this.timeoutMs, PUSH_IDLE_MS));
    async function* text(): AsyncGenerator<string> {
      const decoder = new TextDecoder();
      for await (const piece of res.body as unknown as AsyncIterable<Uint8Array>) {
        deadline.kick();
        yield decoder.decode(piece, { stream: true });
      }
    }
    try {
      for await (const ev of parseSse(text())) {
        if (ev.event === 'revoked') throw sessionRevoked(undefined, 'This device was signed out of the account; the push channel closed. Sign in again; local files are kept.');
        yield ev;
      }
    } catch (e) {
      if (signal?.aborted) return;
      if (e instanceof ApiError) throw e;
      throw networkError(e, 'GET /api/v1/changes/stream');
    } finally {
      deadline.stop(); // (leaving the loops cancels the body, and so the connection)
    }
  }

  // ---- plumbing --------------------------------------------------------------

  /** Waits before attempt `attempt + 1`: exponential with jitter, or what the server asked for. */
  async backoff(attempt: number, error?: unknown): Promise<void> {
    const exp = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1));
    const jittered = exp / 2 + Math.random() * (exp / 2);
    const asked = error instanceof ApiError ? error.retryAfterMs ?? 0 : 0;
    await this.sleepFn(Math.max(jittered, Math.min(asked, MAX_RETRY_AFTER_MS)));
  }

  private async json<T>(spec: RequestSpec): Promise<T> {
    return this.withRetries(spec.idempotent, async () => {
      const { res, deadline } = await this.request(spec, undefined, undefined, false);
      try {
        return await readJson<T>(res, `${spec.method} ${spec.path}`);
      } finally {
        deadline.stop();
      }
    });
  }

  /** Runs `attempt` until it succeeds, fails for good, or runs out of attempts. */
  private async withRetries<T>(idempotent: boolean, attempt: () => Promise<T>): Promise<T> {
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (e) {
        const again = idempotent ? isRetryable(e) : isApiError(e, 'NETWORK') && e.details?.notSent === true;
        if (!again || n >= this.maxAttempts || ((e as ApiError).retryAfterMs ?? 0) > MAX_RETRY_AFTER_MS) throw e;
        await this.backoff(n, e);
      }
    }
  }

  /**
   * One request with credentials (renewed first if about to expire, and once
   * after a 401). Answers a 2xx response with its deadline still running
   * (the caller reads the body and stops it); anything else is thrown.
   * `retry`: with a plain spec, retryable failures are retried here.
   */
  private async request(spec: RequestSpec, headers?: Record<string, string>, onDeadline?: (d: Deadline) => void, retry = true): Promise<{ res: Response; deadline: Deadline }> {
    if (retry && !spec.oneShot) return this.withRetries(spec.idempotent, () => this.request(spec, headers, onDeadline, false));
    const what = `${spec.method} ${spec.path}`;
    const url = apiUrl(this.baseUrl, spec.path, spec.query);
    for (let authTries = 0; ; authTries++) {
      const creds = await this.tokens.usable();
      const deadline = new Deadline(this.timeoutMs, spec.signal);
      onDeadline?.(deadline);
      let res: Response;
      try {
        const init: RequestInit = {
          method: spec.method,
          signal: deadline.signal,
          headers: {
            authorization: `Bearer ${creds.accessToken}`,
            'user-agent': this.userAgent,
            accept: spec.accept ?? 'application/json',
            ...(spec.json !== undefined ? { 'content-type': 'application/json' } : {}),
            ...(spec.oneShot ? { 'content-type': spec.oneShot.contentType } : {}),
            ...headers,
          },
        };
        if (spec.json !== undefined) init.body = JSON.stringify(spec.json);
        // redirect 'error' + window null: otherwise fetch clones the request, teeing the stream, and the
        // unread branch keeps every byte sent (a 300 MiB upload held 300 MiB).
        if (spec.oneShot) Object.assign(init, { body: spec.oneShot.body, duplex: 'half', redirect: 'error', window: null });
        res = await this.fetchFn(url, init);
      } catch (e) {
        deadline.stop();
        const local = spec.oneShot?.sourceError();
        if (local !== undefined) throw local;
        if (spec.signal?.aborted) throw spec.signal.reason;
        throw networkError(e, what);
      }
      if (res.ok) return { res, deadline };
      try {
        const err = await errorFromResponse(res);
        if (res.status !== 401) throw err;
        if (authTries > 0) throw sessionRevoked(err);
        await this.tokens.refused(creds);
        if (spec.oneShot) throw err; // the body is gone; the caller sends again, now with the new token
      } finally {
        deadline.stop();
      }
    }
  }
}

async function closeIterator(it: AsyncIterator<unknown> | Iterator<unknown>): Promise<void> {
  try {
    await it.return?.();
  } catch {
    // the source's own cleanup failed; the request's outcome is what counts
  }
}

function isApiError(e: unknown, code: string): e is ApiError {
  return e instanceof ApiError && e.code === code;
}

function defined<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
