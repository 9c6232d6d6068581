/**
 * The chunk protocol (docs/sync-protocol.md): a client cuts files with the
 * shared FastCDC chunker, asks which chunks the server lacks, uploads only
 * those (many per request), and commits manifests of chunk hashes.
 *
 * An upload session is a row in `uploads` (the same lease the streaming
 * upload uses): every chunk the session stored or was told about is
 * referenced from it (`upload_chunks`), so the garbage collector keeps them
 * until a commit puts them in a version or the lease expires. Any activity
 * extends the lease. A successful commit ends the session in its own
 * transaction (unless the client asks to keep it); a failed one leaves it, so
 * nothing the client sent is lost and it can retry.
 *
 * Commits go through `writeFile`, exactly like the streaming upload: one
 * transaction writes version + manifest, item, quota and the change-feed
 * entry, and only after every chunk is durable and recorded. A batch commit
 * runs all its files in one transaction with a savepoint per file, so one
 * file's conflict does not undo the others (and 500 small files cost one
 * fsync, not 500); it keeps the quota as a running total under the locked
 * user row and appends the change-feed entries once, in file order.
 */
import { CHUNK_AVG, CHUNK_MAX, CHUNK_MIN, CHUNK_NORMALIZATION, CofferError, normalizeName } from '@coffer/protocol';
import { newId } from '../db/ids.ts';
import { isForeignKeyViolation, isUniqueViolation } from '../db/errors.ts';
import type { Executor } from '../repositories/executor.ts';
import type { ItemRow } from '../repositories/item.repository.ts';
import { uploadRepository } from '../repositories/upload.repository.ts';
import { userRepository } from '../repositories/user.repository.ts';
import type { ChangeOp } from '../repositories/change.repository.ts';
import type { ChunkRef } from '../repositories/version.repository.ts';
import { ChunkWriter, manifestHash, mapCollected } from './chunk-writer.ts';
import { releaseChunkBuffer, takeChunkBuffer } from './chunk-buffers.ts';
import { ChangeLog } from './change-log.ts';
import type { Principal, ServiceDeps } from './context.ts';
import type { TreeService } from './tree.service.ts';
import { writeFile, type UploadLimits } from './upload.service.ts';

/** Most hashes one `missing` call may ask about. */
export const MAX_MISSING_QUERY = 10_000;
/** Most files in one batch commit. */
export const MAX_BATCH_FILES = 10_000;
/** Most chunk references in one commit request (all files together): ~100 GiB of 1 MiB chunks. */
export const MAX_COMMIT_CHUNKS = 100_000;
/** Chunk writes in flight for one chunks request: many small files' chunks are written in parallel (bytes stay bounded by ChunkWriter). */
const SMALL_CHUNKS_IN_FLIGHT = 64;
/** Frames smaller than this get an exact-size buffer rather than a pooled one (pool classes start at 256 KiB). */
const POOL_FROM = 64 * 1024;
/** Rows per statement, well under SQLite's and PostgreSQL's bound-parameter limits. */
const BATCH = 500;

export const CHUNKING = {
  algorithm: 'fastcdc-gear32-splitmix64-v1',
  min: CHUNK_MIN, avg: CHUNK_AVG, max: CHUNK_MAX, normalization: CHUNK_NORMALIZATION, hash: 'sha256',
} as const;

export interface SessionInfo { uploadId: string; expiresAt: number }

/** One file of a commit: a target, an optional condition, and the manifest (chunk hashes in order). */
export interface CommitFile {
  parentId?: string;
  name?: string;
  itemId?: string;
  ifMatch?: string;
  mustNotExist?: boolean;
  chunks: string[];
  size: number;
}

export type CommitOutcome = { ok: true; item: ItemRow; created: boolean } | { ok: false; error: CofferError };

export class UploadSessionService {
  private readonly deps: ServiceDeps;
  private readonly tree: TreeService;
  private readonly limits: UploadLimits;
  private readonly log: ChangeLog;

  constructor(deps: ServiceDeps, tree: TreeService, limits: UploadLimits) {
    this.deps = deps;
    this.tree = tree;
    this.limits = limits;
    this.log = new ChangeLog(deps);
  }

  async create(p: Principal): Promise<SessionInfo> {
    const now = this.deps.clock.now();
    const row = { id: newId(), owner_id: p.userId, created_at: now, expires_at: now + this.limits.uploadLeaseMs };
    await uploadRepository.create(this.deps.db, row);
    return { uploadId: row.id, expiresAt: row.expires_at };
  }

  /** Ends a session without committing; its chunks go to the collector unless a version uses them. */
  async abandon(p: Principal, uploadId: string): Promise<void> {
    await this.session(p, uploadId);
    await uploadRepository.delete(this.deps.db, uploadId);
  }

  /**
   * The hashes (deduplicated, in request order) that the caller's drive does
   * not hold. Those it holds are referenced from the session, so they stay
   * until the commit.
   */
  async missing(p: Principal, uploadId: string, hashes: string[]): Promise<string[]> {
    await this.session(p, uploadId);
    const unique = [...new Set(hashes)];
    const found = await this.pin(p, uploadId, unique);
    return unique.filter((h) => !found.has(h));
  }

  /**
   * Reads a body of frames [u32 big-endian length][bytes] and stores each
   * chunk (hashed here; the client does not name it). Returns the hashes
   * stored or found, in order, once every one is durable, recorded and
   * referenced from the session. On bad framing, or when the body is cut
   * off, the complete chunks before the fault are kept just the same.
   */
  async putChunks(p: Principal, uploadId: string, body: AsyncIterable<Uint8Array>): Promise<string[]> {
    await this.session(p, uploadId);
    const writer = new ChunkWriter(this.deps, p.userId, this.limits.uploadLeaseMs, uploadId, SMALL_CHUNKS_IN_FLIGHT);
    try {
      for await (const chunk of readFrames(body)) await writer.add(chunk);
      await writer.finish();
    } catch (e) {
      await writer.settle().catch(() => {});
      if (e instanceof CofferError && (e.code === 'BAD_CHUNK_FRAMING' || e.code === 'CHUNK_TOO_LARGE')) {
        throw new CofferError(e.code, undefined, { ...e.details, stored: storedHashes(writer) });
      }
      throw mapCollected(e);
    }
    await writer.settle().catch((e) => { throw mapCollected(e); });
    return storedHashes(writer);
  }

  /**
   * Commits files from chunks the caller's drive holds. Each file gets its
   * own outcome; a failed file changes nothing. The session ends with the
   * transaction when every file succeeded (unless `keepSession`).
   */
  async commit(p: Principal, uploadId: string, files: CommitFile[], opts: { keepSession?: boolean } = {}): Promise<CommitOutcome[]> {
    await this.session(p, uploadId);
    const total = files.reduce((n, f) => n + f.chunks.length, 0);
    if (total > MAX_COMMIT_CHUNKS) throw new CofferError('PAYLOAD_TOO_LARGE', `At most ${MAX_COMMIT_CHUNKS} chunks per commit request.`, { limit: MAX_COMMIT_CHUNKS });
    const chunks = await this.pin(p, uploadId, [...new Set(files.flatMap((f) => f.chunks))]);

    const outcomes: (CommitOutcome | null)[] = files.map((f) => {
      try {
        return this.validate(f, chunks);
      } catch (e) {
        if (e instanceof CofferError) return { ok: false, error: e };
        throw e;
      }
    });

    const { db, clock } = this.deps;
    const trx = await db.startTransaction().execute();
    let seq = 0;
    try {
      // Lock the drive's user row and read it (a no-op update, portable; on SQLite the transaction holds the lock
      // already, see db/sqlite-dialect.ts) so the quota can be kept as one running total:
      // the users row is then written once per batch, not once per file (on PostgreSQL, updating one row
      // thousands of times in a transaction builds a version chain that makes every update slower).
      const user = await trx.updateTable('users').set((eb) => ({ used_bytes: eb.ref('used_bytes') })).where('id', '=', p.userId)
        .returning(['used_bytes', 'quota_bytes']).executeTakeFirstOrThrow();
      let used = Number(user.used_bytes);
      const quota = Number(user.quota_bytes);
      let totalGrowth = 0;
      const entries: { op: ChangeOp; item: ItemRow }[] = [];
      for (let i = 0; i < files.length; i++) {
        if (outcomes[i] !== null) continue;
        const f = files[i];
        let growth = 0;
        let fileEntries: typeof entries = [];
        const sp = await trx.savepoint('file').execute();
        try {
          const refs: ChunkRef[] = f.chunks.map((h) => ({ chunkId: chunks.get(h)!.id, size: chunks.get(h)!.size }));
          const target = f.itemId !== undefined ? { itemId: f.itemId } : { parentId: f.parentId, name: normalizeName(f.name!) };
          const r = await writeFile(sp, this.deps, this.tree, p, target, { ifMatch: f.ifMatch, mustNotExist: f.mustNotExist },
            { size: f.size, contentHash: manifestHash(f.chunks), chunks: async () => refs },
            async (e) => { fileEntries = e; },
            (g) => {
              if (g > 0 && quota > 0 && used + g > quota) throw new CofferError('QUOTA_EXCEEDED', undefined, { quotaBytes: quota, usedBytes: used, neededBytes: g });
              growth = g;
            });
          await sp.releaseSavepoint('file').execute();
          used += growth;
          totalGrowth += growth;
          entries.push(...fileEntries);
          outcomes[i] = { ok: true, ...r };
        } catch (e) {
          await sp.rollbackToSavepoint('file').execute();
          await sp.releaseSavepoint('file').execute();
          outcomes[i] = { ok: false, error: toFileError(e, f) };
        }
      }
      if (!(await userRepository.addUsedBytes(trx, p.userId, totalGrowth))) throw new CofferError('QUOTA_EXCEEDED', undefined, { neededBytes: totalGrowth });
      seq = await this.log.record(trx, p.userId, entries);
      const allOk = outcomes.every((o) => o!.ok);
      if (allOk && !opts.keepSession) await uploadRepository.delete(trx, uploadId);
      else await uploadRepository.extend(trx, uploadId, clock.now() + this.limits.uploadLeaseMs);
      await trx.commit().execute();
    } catch (e) {
      if (!trx.isCommitted && !trx.isRolledBack) await trx.rollback().execute().catch(() => {});
      throw mapCollected(e);
    }
    this.log.publish(p.userId, seq);
    return outcomes as CommitOutcome[];
  }

  /** Checks what can be checked before the transaction; null when the file may go ahead. */
  private validate(f: CommitFile, chunks: Map<string, { id: string; size: number }>): CommitOutcome | null {
    const byId = f.itemId !== undefined;
    if (byId === (f.parentId !== undefined || f.name !== undefined) || (!byId && (f.parentId === undefined || f.name === undefined))) {
      throw new CofferError('VALIDATION_FAILED', 'Name the file by itemId, or by parentId and name.');
    }
    if (!byId) normalizeName(f.name!); // INVALID_NAME with a reason
    if (f.ifMatch !== undefined && f.mustNotExist) throw new CofferError('VALIDATION_FAILED', 'Give ifMatch or mustNotExist, not both.');
    const missing = [...new Set(f.chunks.filter((h) => !chunks.has(h)))];
    if (missing.length) throw new CofferError('CHUNKS_MISSING', undefined, { missing });
    const size = f.chunks.reduce((n, h) => n + chunks.get(h)!.size, 0);
    if (size !== f.size) throw new CofferError('VALIDATION_FAILED', `The chunks add up to ${size} bytes, not ${f.size}.`, { chunkBytes: size });
    if (this.limits.maxUploadBytes > 0 && size > this.limits.maxUploadBytes) throw new CofferError('PAYLOAD_TOO_LARGE', undefined, { limit: this.limits.maxUploadBytes });
    return null;
  }

  /**
   * Looks the hashes up in the caller's drive and references the ones found
   * from the session; extends the lease. A chunk collected between the
   * look-up and the reference makes the foreign key fail: look again (it is
   * then simply missing).
   */
  private async pin(p: Principal, uploadId: string, hashes: string[]): Promise<Map<string, { id: string; size: number }>> {
    for (let attempt = 1; ; attempt++) {
      const found = new Map<string, { id: string; size: number }>();
      try {
        await this.deps.db.transaction().execute(async (trx) => {
          for (let i = 0; i < hashes.length; i += BATCH) {
            const rows = await trx.selectFrom('chunks').select(['id', 'hash', 'size'])
              .where('owner_id', '=', p.userId).where('hash', 'in', hashes.slice(i, i + BATCH)).execute();
            for (const r of rows) found.set(r.hash, { id: r.id, size: r.size });
            if (rows.length) {
              await trx.insertInto('upload_chunks').values(rows.map((r) => ({ upload_id: uploadId, chunk_id: r.id })))
                .onConflict((oc) => oc.doNothing()).execute();
            }
          }
          await extendLease(trx, uploadId, this.deps.clock.now() + this.limits.uploadLeaseMs);
        });
        return found;
      } catch (e) {
        if (!isForeignKeyViolation(e)) throw e;
        await this.session(p, uploadId); // the session itself expired meanwhile → NOT_FOUND
        if (attempt >= 3) throw new CofferError('STORAGE_UNAVAILABLE', 'Cleanup kept removing chunks of this upload; ask again.');
      }
    }
  }

  /** The caller's live session, or NOT_FOUND (also for another user's session: indistinguishable). */
  private async session(p: Principal, uploadId: string): Promise<void> {
    const row = await this.deps.db.selectFrom('uploads').select('id')
      .where('id', '=', uploadId).where('owner_id', '=', p.userId).where('expires_at', '>=', this.deps.clock.now()).executeTakeFirst();
    if (!row) throw new CofferError('NOT_FOUND', 'No such upload session (it may have expired); start a new one.');
  }
}

async function extendLease(trx: Executor, uploadId: string, expiresAt: number): Promise<void> {
  await uploadRepository.extend(trx, uploadId, expiresAt);
}

function toFileError(e: unknown, f: CommitFile): CofferError {
  if (e instanceof CofferError) return e;
  if (isUniqueViolation(e)) return new CofferError('NAME_CONFLICT', 'Another upload created this file first.', { name: f.name });
  const mapped = mapCollected(e);
  if (mapped instanceof CofferError) return mapped;
  throw e;
}

/** Hashes of the chunks the writer has stored or found (recorded after `settle`), deduplicated, in order. */
function storedHashes(writer: ChunkWriter): string[] {
  return [...new Set(writer.refs.filter((r) => r.chunkId !== '').map((r) => r.hash))];
}

/**
 * Splits a body into its frames: [u32 big-endian length][length bytes],
 * 1 <= length <= CHUNK_MAX. Each chunk is a fresh pooled buffer (owned by the caller).
 */
export async function* readFrames(body: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const header = new Uint8Array(4);
  let headerBytes = 0;
  let chunk: Uint8Array | null = null;
  let filled = 0;
  let frames = 0;
  for await (const piece of body) {
    let off = 0;
    while (off < piece.length) {
      if (chunk === null) {
        const n = Math.min(4 - headerBytes, piece.length - off);
        header.set(piece.subarray(off, off + n), headerBytes);
        headerBytes += n;
        off += n;
        if (headerBytes < 4) break;
        headerBytes = 0;
        const len = ((header[0] << 24) | (header[1] << 16) | (header[2] << 8) | header[3]) >>> 0;
        if (len === 0 || len > CHUNK_MAX) throw new CofferError('CHUNK_TOO_LARGE', undefined, { frame: frames, length: len, max: CHUNK_MAX });
        chunk = len < POOL_FROM ? new Uint8Array(len) : takeChunkBuffer(len);
        filled = 0;
      }
      const n = Math.min(chunk.length - filled, piece.length - off);
      chunk.set(piece.subarray(off, off + n), filled);
      filled += n;
      off += n;
      if (filled === chunk.length) {
        const done = chunk;
        chunk = null;
        frames++;
        yield done;
      }
    }
  }
  if (chunk !== null || headerBytes > 0) {
    if (chunk) releaseChunkBuffer(chunk);
    throw new CofferError('BAD_CHUNK_FRAMING', 'The body ended inside a frame; complete frames before it were stored.', { frame: frames });
  }
}
