/**
 * Chunks stored inside packs. A pack is one blob of many chunks, written by
 * appending (BlobStore.openPack) and made durable by one fsync: a 1 GiB
 * upload makes ~64 packs instead of ~3,400 chunk files, each with its own
 * fsync, rename and folder fsync (bench/storage-floor.ts has the figures).
 *
 * A chunk in a pack has a key of its own that says where it is:
 * `<pack key>/<offset>-<size>`, the pack key being `p/<owner>/pack.<generation>`.
 * The key alone locates the bytes, as in RoutedBlobStore, so the metadata
 * keeps one `blob_key` per chunk row and nothing else needs to know.
 *
 * What a member key does:
 * - get / stat / localFile read the pack's bytes at the member's offset;
 * - put is refused: members are written through a pack;
 * - delete does nothing: a pack is removed whole, by the orphan sweep, once no
 *   chunk row names any of its members (MaintenanceService.removeOrphanBlobs);
 * - list never yields members, only the packs themselves.
 * Every other key goes to the wrapped store as it is.
 */
import { Readable } from 'node:stream';
import {
  assertValidRange,
  BlobNotFoundError,
  type BlobPack,
  type BlobStat,
  type BlobStore,
  type LocalFile,
  type PutOptions,
} from './blob-store.ts';

export const PACK_KEY_PREFIX = 'p/';

export interface PackMember { pack: string; offset: number; size: number }

const MEMBER_RE = /^(p\/.+)\/(\d{1,15})-(\d{1,15})$/;

/** The key of `size` bytes at `offset` of `pack`. */
export function packMemberKey(pack: string, offset: number, size: number): string {
  if (!pack.startsWith(PACK_KEY_PREFIX)) throw new Error(`not a pack key: ${JSON.stringify(pack)}`);
  return `${pack}/${offset}-${size}`;
}

/** The pack and place a member key names; null for any other key. */
export function parsePackMember(key: string): PackMember | null {
  const m = MEMBER_RE.exec(key);
  if (!m) return null;
  return { pack: m[1]!, offset: Number(m[2]), size: Number(m[3]) };
}

/** The blob a chunk's bytes are in: its pack for a member, else the key itself. */
export function storedBlobKey(key: string): string {
  return parsePackMember(key)?.pack ?? key;
}

export class PackedBlobStore implements BlobStore {
  readonly kind: string;
  readonly capabilities: BlobStore['capabilities'];
  readonly #main: BlobStore;

  constructor(main: BlobStore) {
    this.#main = main;
    this.kind = main.kind;
    this.capabilities = main.capabilities;
  }

  init(): Promise<void> {
    return this.#main.init();
  }

  put(key: string, data: Uint8Array, opts?: PutOptions): Promise<void> {
    if (parsePackMember(key)) {
      opts?.onWritten?.();
      return Promise.reject(new Error(`a pack member is written through its pack: ${JSON.stringify(key)}`));
    }
    return this.#main.put(key, data, opts);
  }

  async get(key: string, range?: { start: number; end: number }): Promise<Readable> {
    const m = parsePackMember(key);
    if (!m) return this.#main.get(key, range);
    if (range) assertValidRange(range);
    const start = range?.start ?? 0;
    const end = Math.min(range?.end ?? m.size - 1, m.size - 1);
    if (start > end) {
      // Nothing to read (an empty member, or a start past its end); a missing pack must still say so.
      if (!(await this.#main.stat(m.pack))) throw new BlobNotFoundError(key);
      return Readable.from([]);
    }
    try {
      return await this.#main.get(m.pack, { start: m.offset + start, end: m.offset + end });
    } catch (e) {
      if (e instanceof BlobNotFoundError) throw new BlobNotFoundError(key);
      throw e;
    }
  }

  /** A member's size is what its pack holds of it: less than recorded when the pack is cut short. */
  async stat(key: string): Promise<BlobStat | null> {
    const m = parsePackMember(key);
    if (!m) return this.#main.stat(key);
    const st = await this.#main.stat(m.pack);
    if (!st) return null;
    return { size: Math.max(0, Math.min(m.size, st.size - m.offset)) };
  }

  async delete(key: string): Promise<void> {
    if (parsePackMember(key)) return; // the pack goes whole, once nothing names it
    await this.#main.delete(key);
  }

  list(prefix: string): AsyncIterable<{ key: string; size: number }> {
    return this.#main.list(prefix);
  }

  cleanupAbandoned(): Promise<number> {
    return this.#main.cleanupAbandoned();
  }

  localFile(key: string): LocalFile | null {
    if (!this.#main.localFile) return null;
    const m = parsePackMember(key);
    if (!m) return this.#main.localFile(key);
    const f = this.#main.localFile(m.pack);
    return f && { path: f.path, offset: f.offset + m.offset };
  }

  get openPack(): (() => BlobPack) | undefined {
    return this.#main.openPack?.bind(this.#main);
  }

  close(): Promise<void> {
    return this.#main.close();
  }
}
