/**
 * Where file contents live: immutable blobs addressed by a key the caller
 * chooses (the metadata layer names chunks `<owner>/<sha256>/<generation>`).
 *
 * Contract every implementation keeps (checked by blob-store.conformance.ts):
 * - `put` is atomic and durable: when it resolves, the whole blob is stored and
 *   survives a crash (temp name + fsync + rename, or a completed S3 PUT); if it
 *   rejects or the process dies, no partial blob is visible under `key`.
 *   `onWritten` (if given) is called once the store no longer reads `data`,
 *   which may be well before the blob is durable (the local store's fsync).
 * - `get` of a missing key rejects with BlobNotFoundError; a range is
 *   inclusive [start, end], as in HTTP.
 * - `delete` is idempotent: deleting a missing key resolves.
 * - Keys are opaque strings of [A-Za-z0-9/_.-]; '..' never appears.
 * - `list(prefix)` matches a plain string prefix, as S3 does ('a' lists 'ab/c').
 * The database store (small chunks) is durable in its own way: see database.blob-store.ts.
 *
 * Packs (optional, `openPack`): many chunks appended to one blob, made durable
 * by one fsync instead of one per chunk; each chunk is then read through a
 * member key naming its pack, offset and size (see packed.blob-store.ts).
 */
import type { Readable } from 'node:stream';

export interface BlobStat { size: number }

export interface PutOptions {
  /**
   * Called at most once, when the store is done reading `data` and the caller
   * may reuse its memory; stores that cannot tell earlier call it when `put`
   * settles. Lets an upload go on receiving while earlier blobs become durable.
   */
  onWritten?: () => void;
}

export interface BlobCapabilities {
  /** The store can hand out a local file path, so downloads may use sendfile-like streaming. */
  readonly localFiles: boolean;
}

/**
 * A blob being built by appends (a pack of chunks). Nothing is visible under
 * any key until `seal` resolves; `abort`, or a crash, leaves nothing behind but
 * a temp file that cleanupAbandoned removes.
 */
export interface BlobPack {
  /** Bytes appended so far: the offset the next append gets. */
  readonly size: number;
  /**
   * Appends `data` at `size`. `written` resolves once the store no longer reads
   * `data` (it is in the page cache, not yet durable); it never rejects: a failed
   * write makes `seal` reject.
   */
  append(data: Uint8Array): { offset: number; written: Promise<void> };
  /** Waits for every append, then stores the whole pack atomically and durably under `key`. */
  seal(key: string): Promise<void>;
  /** Drops the pack once its appends are done. Idempotent; safe after a failed seal. */
  abort(): Promise<void>;
}

/** Where a blob's bytes start in a local file (a pack's member starts inside its pack). */
export interface LocalFile { path: string; offset: number }

export interface BlobStore {
  readonly kind: string;
  readonly capabilities: BlobCapabilities;
  /** Creates what the store needs (folders, bucket check). Idempotent. */
  init(): Promise<void>;
  put(key: string, data: Uint8Array, opts?: PutOptions): Promise<void>;
  /** The caller must read the stream to its end or destroy it: S3 holds a connection until then. */
  get(key: string, range?: { start: number; end: number }): Promise<Readable>;
  stat(key: string): Promise<BlobStat | null>;
  delete(key: string): Promise<void>;
  /** Every stored key under a prefix, in no particular order. */
  list(prefix: string): AsyncIterable<{ key: string; size: number }>;
  /** Removes temp files left by writers that died (crash, SIGKILL). Returns how many. */
  cleanupAbandoned(): Promise<number>;
  /** The local file holding a blob when `capabilities.localFiles` is true; null for one kept elsewhere (see RoutedBlobStore). */
  localFile?(key: string): LocalFile | null;
  /** Starts a pack, when the store can build blobs by appending (see BlobPack). */
  openPack?(): BlobPack;
  close(): Promise<void>;
}

export class BlobNotFoundError extends Error {
  constructor(key: string) {
    super(`blob not found: ${key}`);
    this.name = 'BlobNotFoundError';
  }
}

const KEY_RE = /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/;
/** Rejects keys that could escape the store's root. */
export function assertValidKey(key: string): void {
  if (!KEY_RE.test(key) || key.split('/').some((p) => p === '.' || p === '..')) {
    throw new Error(`invalid blob key: ${JSON.stringify(key)}`);
  }
}

const PREFIX_RE = /^([A-Za-z0-9_.-]+\/)*[A-Za-z0-9_.-]*$/;
/** A list prefix is '' or the start of a valid key; rejects what could escape the root. */
export function assertValidPrefix(prefix: string): void {
  if (!PREFIX_RE.test(prefix) || prefix.split('/').some((p) => p === '.' || p === '..')) {
    throw new Error(`invalid blob prefix: ${JSON.stringify(prefix)}`);
  }
}

/** A range is inclusive; stores clamp an end past the blob, as HTTP does, and a start past it yields no bytes. */
export function assertValidRange(range: { start: number; end: number }): void {
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new RangeError(`invalid blob range: ${start}-${end}`);
  }
}
