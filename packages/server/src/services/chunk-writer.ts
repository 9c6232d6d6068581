/**
 * Stores the chunks of one upload. Each chunk is hashed and looked up in the
 * owner's drive (dedup never crosses users); a new one is written durably to
 * the blob store first, and recorded in the metadata afterwards, in batches:
 * a row never points at a blob that is not on disk.
 *
 * Why batches: every metadata commit costs an fsync, and a 1 GiB file has
 * ~1,000 chunks. Until its row exists, a fresh blob is protected from the
 * orphan sweep by the time in its key (see MaintenanceService); batches are
 * flushed far more often than that grace period, under the upload's lease
 * row, whose references keep the garbage collector off the chunks.
 */
import { createHash } from 'node:crypto';
import { CHUNK_MAX, CHUNK_MIN, CofferError } from '@coffer/protocol';
import { newGeneration, newId } from '../db/ids.ts';
import { isForeignKeyViolation } from '../db/errors.ts';
import { chunkRepository, type ChunkRow } from '../repositories/chunk.repository.ts';
import { uploadRepository } from '../repositories/upload.repository.ts';
import type { Executor } from '../repositories/executor.ts';
import type { ChunkRef } from '../repositories/version.repository.ts';
import type { ServiceDeps } from './context.ts';
import { insertInlineBlobs } from '../blobstore/database.blob-store.ts';
import { releaseChunkBuffer } from './chunk-buffers.ts';
import { ChunkPacker, PACK_BYTES, type PackedChunk } from './chunk-packer.ts';
import { PACK_KEY_PREFIX, storedBlobKey } from '../blobstore/packed.blob-store.ts';

/**
 * How many chunk writes one upload keeps in flight (bounds memory to this × CHUNK_MAX).
 * 4, not 8: the same upload speed here (a write hands its buffer back once it is in the
 * page cache, before the fsync), and ~8 MiB less memory over a 5 GiB upload.
 */
const WRITE_CONCURRENCY = 4;
/**
 * How much one upload may have written and not yet fsynced: dirty pages, not memory. Room for three packs (two
 * syncing while the next fills), so waiting here seals a part-filled pack only when the disk falls behind.
 */
const UNSYNCED_CHUNKS = 3 * (PACK_BYTES / CHUNK_MIN);
const UNSYNCED_BYTES = 3 * PACK_BYTES;
/** Record new chunks after this many, or after this long, whichever comes first. */
const FLUSH_EVERY_CHUNKS = 64;
const FLUSH_EVERY_MS = 30_000;
/**
 * A blob with no row that is older than this may be removed by the orphan
 * sweep (MaintenanceService): a writer that died between storing and
 * recording leaves exactly such blobs.
 */
export const ORPHAN_GRACE_MS = 15 * 60_000;
/** Rows are recorded well before their blob could be swept, or not at all. */
const RECORD_DEADLINE_MS = ORPHAN_GRACE_MS - 5 * 60_000;

/**
 * Blob keys of chunks: `p/<owner>/pack.<generation>/<offset>-<size>` inside a pack where the store builds packs
 * (local disk), else `c/<owner>/<2 hex>/<sha256>.<generation>` (S3, and drives written before packs); and
 * `i/<owner>/<sha256>.<generation>` for small ones kept in the metadata database.
 */
export const CHUNK_KEY_PREFIX = 'c/';
export const INLINE_KEY_PREFIX = 'i/';
export const CHUNK_KEY_PREFIXES = [CHUNK_KEY_PREFIX, INLINE_KEY_PREFIX, PACK_KEY_PREFIX] as const;

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * A file's content hash: SHA-256 over the concatenated binary SHA-256 digests
 * of its chunks, in order. The client computes the same with the shared chunker.
 */
export { manifestHash } from '@coffer/protocol';

export type HashedRef = ChunkRef & { hash: string };

export class ChunkWriter {
  private readonly deps: ServiceDeps;
  private readonly ownerId: string;
  private readonly leaseMs: number;
  /** hash → chunk id, for every chunk of this upload already stored or found. */
  private readonly known = new Map<string, Promise<string>>();
  /** Chunks whose bytes the blob store is still reading (their buffers are not back in the pool yet). */
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Chunks written but not yet durable. */
  private readonly unsynced = new Set<Promise<string>>();
  private unsyncedBytes = 0;
  /** The first chunk that could not be stored: the upload fails with it. */
  private failure: unknown = undefined;
  private readonly maxInFlight: number;
  /** Bytes of the chunks in flight: kept under WRITE_CONCURRENCY × CHUNK_MAX whatever maxInFlight is. */
  private inFlightBytes = 0;
  /** Stored blobs whose rows are not written yet. */
  private unrecorded: ChunkRow[] = [];
  /** The bytes of small chunks among them, by blob key: written with their rows (see record()). */
  private readonly inlineBytes = new Map<string, Buffer>();
  /** Existing chunks this upload uses, not yet referenced from its lease. */
  private unreferenced: string[] = [];
  private uploadId: string | null = null;
  private lastFlush: number;
  /** Packs this upload's chunks where the store can (see chunk-packer.ts); null: a blob per chunk. */
  private readonly packer: ChunkPacker | null;
  /** Per pack this upload sealed: its chunk count, how many of its rows record() has seen, and whether any was kept. */
  private readonly packs = new Map<string, { members: number; recorded: number; kept: boolean }>();
  /** Chunks still on their way to the packer (the dedup lookup runs first): a pack is sealed for good only after them. */
  private readonly placing = new Set<Promise<void>>();
  readonly refs: HashedRef[] = [];

  /**
   * `uploadId`: an existing lease (an upload session of the chunk protocol) to reference the chunks from; by default one is created at the first flush.
   * `maxInFlight`: chunk writes kept in flight (default WRITE_CONCURRENCY); in-flight bytes stay under WRITE_CONCURRENCY × CHUNK_MAX
   * whatever the count, so many small chunks can be written in parallel in the same memory as a few large ones.
   */
  constructor(deps: ServiceDeps, ownerId: string, leaseMs: number, uploadId?: string, maxInFlight = WRITE_CONCURRENCY) {
    this.maxInFlight = maxInFlight;
    this.deps = deps;
    this.ownerId = ownerId;
    this.leaseMs = leaseMs;
    this.lastFlush = deps.clock.now();
    this.uploadId = uploadId ?? null;
    const openPack = deps.blobs.openPack;
    this.packer = openPack ? new ChunkPacker(openPack, ownerId, () => deps.clock.now()) : null;
  }

  /**
   * Queues one chunk; resolves once there is room for another in flight.
   * Takes ownership of `data`: it goes back to the chunk-buffer pool as soon
   * as the blob store is done reading it, which for the local store is before
   * the blob's fsync: receiving goes on while earlier chunks become durable
   * (their rows are recorded only once they are, see store()).
   */
  async add(data: Uint8Array): Promise<void> {
    if (this.failure) throw this.failure;
    const hash = sha256Hex(data);
    const ref: HashedRef = { chunkId: '', size: data.byteLength, hash };
    this.refs.push(ref);
    let id = this.known.get(hash);
    let written: Promise<void>;
    if (!id) {
      let tell!: () => void;
      written = new Promise<void>((resolve) => { tell = resolve; });
      // The closures below live until the chunk is durable (its pack sealed): they hold the buffer only until it is
      // handed back, so buffers the full pool drops can be freed meanwhile.
      let held: Uint8Array | null = data;
      const release = () => {
        if (!held) return;
        releaseChunkBuffer(held);
        held = null;
        tell();
      };
      let placed!: () => void;
      const placing = new Promise<void>((resolve) => { placed = resolve; });
      this.placing.add(placing);
      void placing.then(() => this.placing.delete(placing));
      const durable = this.store(hash, data, release, placed);
      void durable.then(placed, placed);
      id = durable;
      this.known.set(hash, durable);
      this.unsynced.add(durable);
      this.unsyncedBytes += data.byteLength;
      const bytes = data.byteLength;
      const synced = () => { this.unsynced.delete(durable); this.unsyncedBytes -= bytes; };
      durable.then(() => { release(); synced(); }, (e: unknown) => { release(); synced(); this.failure ??= e; });
    } else {
      releaseChunkBuffer(data);
      written = Promise.resolve();
    }
    id.then((chunkId) => { ref.chunkId = chunkId; }, () => {});
    const bytes = data.byteLength;
    this.inFlight.add(written);
    this.inFlightBytes += bytes;
    written.then(() => { this.inFlight.delete(written); this.inFlightBytes -= bytes; });
    while (this.inFlight.size >= this.maxInFlight || (this.inFlight.size > 0 && this.inFlightBytes >= WRITE_CONCURRENCY * CHUNK_MAX)) {
      await Promise.race(this.inFlight);
    }
    // Written but not yet durable: bounded too, so a slow disk slows the upload instead of piling up dirty pages.
    while (this.unsynced.size > 0 && (this.unsynced.size >= UNSYNCED_CHUNKS || this.unsyncedBytes >= UNSYNCED_BYTES)) {
      // The chunks waited for may sit in the open pack, or be on their way to it: unless a sealed pack is still
      // syncing (its end wakes this loop), seal the open one, and look again once a chunk arrives.
      this.packer?.sealIfIdle();
      await Promise.race([...[...this.unsynced].map((p) => p.catch(() => {})), ...this.placing]);
    }
    if (this.failure) throw this.failure;
    if (this.unrecorded.length >= FLUSH_EVERY_CHUNKS || this.deps.clock.now() - this.lastFlush > FLUSH_EVERY_MS) await this.flush();
  }

  /** Waits for every queued chunk; rejects if any write failed. */
  async finish(): Promise<HashedRef[]> {
    await this.sealLast();
    await Promise.all(this.known.values());
    return this.refs;
  }

  /** Seals the last pack once every chunk queued has reached it. */
  private async sealLast(): Promise<void> {
    if (!this.packer) return;
    await Promise.all(this.placing);
    this.packer.seal();
  }

  /**
   * Records what is not recorded yet, inside the caller's transaction (the
   * commit) or its own. A chunk the owner gained meanwhile from a concurrent
   * upload is used instead of ours, and our blob is removed.
   */
  async record(trx: Executor): Promise<string[]> {
    const rows = this.unrecorded;
    const existing = this.unreferenced;
    this.unrecorded = [];
    this.unreferenced = [];
    // A blob without a row may be swept once ORPHAN_GRACE_MS old: never record one that is getting close.
    const now = this.deps.clock.now();
    if (rows.some((r) => now - r.created_at > RECORD_DEADLINE_MS)) {
      throw new CofferError('STORAGE_UNAVAILABLE', 'Part of this upload waited too long to be recorded and may have been cleaned up; send it again.');
    }
    const duplicates: string[] = [];
    const inserted = await chunkRepository.insertManyIfAbsent(trx, rows);
    const small: { key: string; data: Buffer }[] = [];
    const lost: ChunkRow[] = [];
    for (const row of rows) {
      const data = this.inlineBytes.get(row.blob_key);
      this.inlineBytes.delete(row.blob_key);
      const pack = this.packs.get(storedBlobKey(row.blob_key));
      if (pack) pack.recorded++;
      if (inserted.has(row.id)) {
        if (data) small.push({ key: row.blob_key, data });
        if (pack) pack.kept = true;
        existing.push(row.id);
      } else {
        lost.push(row);
        // Ours is deleted after commit (a small one was never written; a pack goes once none of its chunks was kept).
        if (!data && !pack) duplicates.push(row.blob_key);
      }
    }
    for (const [key, pack] of this.packs) {
      if (pack.recorded < pack.members) continue;
      if (!pack.kept) duplicates.push(key);
      this.packs.delete(key);
    }
    await insertInlineBlobs(trx, small);
    if (lost.length) {
      // The owner gained these chunks meanwhile (a concurrent upload): use theirs.
      const winners = await chunkRepository.idsByHash(trx, this.ownerId, lost.map((r) => r.hash));
      for (const row of lost) {
        const winner = winners.get(row.hash);
        if (!winner) throw new Error(`chunk ${row.hash} neither inserted nor found`);
        for (const r of this.refs) if (r.chunkId === row.id) r.chunkId = winner;
        this.known.set(row.hash, Promise.resolve(winner));
        existing.push(winner);
      }
    }
    if (this.uploadId) {
      await chunkRepository.referenceMany(trx, this.uploadId, existing);
      await uploadRepository.extend(trx, this.uploadId, this.deps.clock.now() + this.leaseMs);
    }
    return duplicates;
  }

  /**
   * Waits for every chunk write that was started, even when some failed, and
   * records the stored ones under the lease: afterwards each chunk that was
   * written is durable, has its row and is referenced. Rejects only if recording fails.
   */
  async settle(): Promise<void> {
    await this.sealLast();
    await Promise.allSettled([...this.known.values()]);
    await this.flush();
  }

  /** Ends the lease (the commit deletes it in its own transaction), and drops a pack the upload left unsealed. */
  async release(): Promise<void> {
    await this.packer?.abort();
    if (this.uploadId) await uploadRepository.delete(this.deps.db, this.uploadId).catch(() => {});
  }

  get leaseId(): string | null {
    return this.uploadId;
  }

  private async flush(): Promise<void> {
    const { db, blobs, clock } = this.deps;
    this.lastFlush = clock.now();
    let duplicates: string[] = [];
    try {
      duplicates = await db.transaction().execute(async (trx) => {
        if (!this.uploadId) {
          this.uploadId = newId();
          await uploadRepository.create(trx, { id: this.uploadId, owner_id: this.ownerId, created_at: this.lastFlush, expires_at: this.lastFlush + this.leaseMs });
        }
        return this.record(trx);
      });
    } catch (e) {
      throw mapCollected(e);
    }
    for (const key of duplicates) await blobs.delete(key);
  }

  /** Records a packed chunk's row once its pack is sealed; resolves with its id. */
  private async whenPacked(row: ChunkRow, stored: Promise<PackedChunk>): Promise<string> {
    // The row's time is the pack's: the orphan sweep reads the key's, and record() must run well within the grace.
    const where = await stored;
    row.blob_key = where.key;
    row.created_at = where.bornAt;
    if (!this.packs.has(where.pack)) this.packs.set(where.pack, { members: where.members, recorded: 0, kept: false });
    this.unrecorded.push(row);
    return row.id;
  }

  /**
   * Stores a chunk unless the drive has it; resolves with its id once it is durable (`written`: see BlobStore.put).
   * `placed`: called once the chunk is in the packer's hands (or needs none), before its pack is sealed.
   */
  private async store(hash: string, data: Uint8Array, written: () => void, placed: () => void): Promise<string> {
    const { db, blobs, clock } = this.deps;
    const found = await chunkRepository.idByHash(db, this.ownerId, hash);
    if (found) {
      this.unreferenced.push(found);
      return found;
    }
    const now = clock.now();
    const inlineMax = this.deps.inlineMaxBytes ?? 0;
    const row: ChunkRow = { id: newId(), owner_id: this.ownerId, hash, size: data.byteLength, blob_key: '', created_at: now };
    if (inlineMax > 0 && data.byteLength <= inlineMax) {
      row.blob_key = `${INLINE_KEY_PREFIX}${this.ownerId}/${hash}.${newGeneration(now)}`;
      // Kept until record() writes it beside its chunk row, in one transaction (the buffer goes back to the pool now).
      this.inlineBytes.set(row.blob_key, Buffer.from(data));
      written();
    } else if (this.packer) {
      const { written: read, stored } = this.packer.append(data);
      placed();
      void read.then(written);
      return this.whenPacked(row, stored); // not awaited here: this frame, which holds `data`, ends now
    } else {
      row.blob_key = `${CHUNK_KEY_PREFIX}${this.ownerId}/${hash.slice(0, 2)}/${hash}.${newGeneration(now)}`;
      await blobs.put(row.blob_key, data, { onWritten: written });
    }
    this.unrecorded.push(row);
    return row.id;
  }
}

/**
 * A chunk this upload found in the drive was collected before the upload
 * referenced it (its last version was deleted meanwhile). Nothing is lost —
 * the commit did not happen — and sending the file again stores it anew.
 */
export function mapCollected(e: unknown): unknown {
  return isForeignKeyViolation(e) ? new CofferError('STORAGE_UNAVAILABLE', 'Part of this upload was removed by cleanup while it ran; send the file again.') : e;
}
