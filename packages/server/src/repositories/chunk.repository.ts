/**
 * Chunks and the references that keep them alive: version manifests and
 * uploads in progress. Collection relies on the foreign keys: deleting a
 * chunk that something references fails instead of succeeding.
 */
import { PostgresAdapter, sql, type Selectable } from 'kysely';
import type { ChunksTable } from '../db/schema.ts';
import type { Executor } from './executor.ts';
import { preparedInsert, preparedQuery, type Params } from '../db/prepared-query.ts';
import { PACK_KEY_PREFIX } from '../blobstore/packed.blob-store.ts';

export type ChunkRow = Selectable<ChunksTable>;

/** Rows per multi-row statement: 6 columns × 150 stays far below SQLite's and PostgreSQL's bound-parameter limits. */
const ROWS_PER_STATEMENT = 150;

/** Deduplication asks this for every chunk of every upload. */
const chunkIdByHash = preparedQuery((db, p: Params<{ ownerId: string; hash: string }>) => db.selectFrom('chunks').select('id')
  .where('owner_id', '=', p('ownerId')).where('hash', '=', p('hash')));

/** A small upload records its one new chunk with this. */
const insertChunkIfAbsent = preparedInsert('chunks', (q) => q.onConflict((oc) => oc.columns(['owner_id', 'hash']).doNothing()).returning('id'));

export const chunkRepository = {
  /** The id of the owner's chunk with this content hash, if the drive has one. */
  async idByHash(db: Executor, ownerId: string, hash: string): Promise<string | undefined> {
    return (await chunkIdByHash.first(db, { ownerId, hash }))?.id;
  },

  /** References an existing chunk from an upload; returns its id, or undefined when the owner has no such chunk. */
  async referenceExisting(db: Executor, uploadId: string, ownerId: string, hash: string): Promise<string | undefined> {
    const id = await chunkRepository.idByHash(db, ownerId, hash);
    if (!id) return undefined;
    await db.insertInto('upload_chunks').values({ upload_id: uploadId, chunk_id: id })
      .onConflict((oc) => oc.doNothing()).execute();
    return id;
  },

  /**
   * Inserts freshly stored chunks, a statement per ROWS_PER_STATEMENT; returns the ids of those inserted. A row
   * left out met a chunk the owner already had under that hash (a concurrent upload won).
   */
  async insertManyIfAbsent(db: Executor, rows: readonly ChunkRow[]): Promise<Set<string>> {
    const inserted = new Set<string>();
    // In hash order: two transactions inserting overlapping chunks then wait on their first common key, never on
    // each other's (a deadlock on PostgreSQL).
    if (rows.length === 1) {
      for (const r of await insertChunkIfAbsent.run(db, rows[0]!)) inserted.add(r.id);
      return inserted;
    }
    const ordered = [...rows].sort((a, b) => (a.hash < b.hash ? -1 : a.hash > b.hash ? 1 : 0));
    for (let i = 0; i < ordered.length; i += ROWS_PER_STATEMENT) {
      const got = await db.insertInto('chunks').values(ordered.slice(i, i + ROWS_PER_STATEMENT))
        .onConflict((oc) => oc.columns(['owner_id', 'hash']).doNothing()).returning('id').execute();
      for (const r of got) inserted.add(r.id);
    }
    return inserted;
  },

  /** The owner's chunk ids for these hashes. */
  async idsByHash(db: Executor, ownerId: string, hashes: readonly string[]): Promise<Map<string, string>> {
    const ids = new Map<string, string>();
    for (let i = 0; i < hashes.length; i += ROWS_PER_STATEMENT) {
      const rows = await db.selectFrom('chunks').select(['id', 'hash']).where('owner_id', '=', ownerId)
        .where('hash', 'in', hashes.slice(i, i + ROWS_PER_STATEMENT)).execute();
      for (const r of rows) ids.set(r.hash, r.id);
    }
    return ids;
  },

  /** References chunks from an upload (the lease keeps the collector off them). */
  async referenceMany(db: Executor, uploadId: string, chunkIds: readonly string[]): Promise<void> {
    const ids = [...new Set(chunkIds)];
    for (let i = 0; i < ids.length; i += ROWS_PER_STATEMENT) {
      await db.insertInto('upload_chunks').values(ids.slice(i, i + ROWS_PER_STATEMENT).map((chunk_id) => ({ upload_id: uploadId, chunk_id })))
        .onConflict((oc) => oc.doNothing()).execute();
    }
  },

  /** Chunks nothing references that are older than `cutoff`. */
  async unreferenced(db: Executor, cutoff: number, limit: number): Promise<ChunkRow[]> {
    return db.selectFrom('chunks').selectAll()
      .where('created_at', '<', cutoff)
      .where(({ not, exists, selectFrom }) => not(exists(selectFrom('version_chunks').select(sql`1`.as('x')).whereRef('version_chunks.chunk_id', '=', 'chunks.id'))))
      .where(({ not, exists, selectFrom }) => not(exists(selectFrom('upload_chunks').select(sql`1`.as('x')).whereRef('upload_chunks.chunk_id', '=', 'chunks.id'))))
      .limit(limit).execute();
  },

  /** Deletes the chunk row if still unreferenced; the FK makes a racing reference win. */
  async deleteIfUnreferenced(db: Executor, id: string): Promise<boolean> {
    const r = await db.deleteFrom('chunks').where('id', '=', id)
      .where(({ not, exists, selectFrom }) => not(exists(selectFrom('version_chunks').select(sql`1`.as('x')).where('version_chunks.chunk_id', '=', id))))
      .where(({ not, exists, selectFrom }) => not(exists(selectFrom('upload_chunks').select(sql`1`.as('x')).where('upload_chunks.chunk_id', '=', id))))
      .executeTakeFirst();
    return r.numDeletedRows > 0n;
  },

  async all(db: Executor): Promise<ChunkRow[]> {
    return db.selectFrom('chunks').selectAll().execute();
  },

  /** Whether a chunk row names this blob: as its key, or, for a pack, as the pack of one of its members. */
  async blobInUse(db: Executor, blobKey: string): Promise<boolean> {
    let q = db.selectFrom('chunks').select('id');
    if (blobKey.startsWith(PACK_KEY_PREFIX)) {
      // Members are `<pack>/<offset>-<size>`: the keys after `<pack>/` and before `<pack>0` ('0' follows '/'), byte by byte
      // (migration 0007).
      const key = bytewiseKey(db);
      q = q.where(key, '>', `${blobKey}/`).where(key, '<', `${blobKey}0`);
    } else {
      q = q.where('blob_key', '=', blobKey);
    }
    return !!(await q.limit(1).executeTakeFirst());
  },

  /**
   * Up to `limit` rows of chunks in packs whose keys follow `after`, in byte order: a pack's members come one after
   * another, packs by owner and then by age. What compaction pages through (the index of migration 0007).
   */
  async packedAfter(db: Executor, after: string, limit: number): Promise<PackedChunkRow[]> {
    const key = bytewiseKey(db);
    return db.selectFrom('chunks').select(['id', 'blob_key', 'size', 'hash'])
      .where(key, '>', after).where(key, '<', PACK_KEY_END).orderBy(key).limit(limit).execute();
  },

  /**
   * Of these rows, the ones a transaction may move now, with their current keys. On PostgreSQL each is locked
   * (FOR UPDATE: a key of a unique index changes), skipping rows another transaction holds: an upload referencing
   * a chunk holds a key-share lock on it until its commit, and waiting for it while holding other rows it may
   * reference next would be a deadlock. SQLite's write lock, taken at BEGIN, already excludes every other writer.
   */
  async lockToMove(trx: Executor, ids: readonly string[]): Promise<Map<string, string>> {
    const got = new Map<string, string>();
    const pg = trx.getExecutor().adapter instanceof PostgresAdapter;
    for (let i = 0; i < ids.length; i += ROWS_PER_STATEMENT) {
      const q = trx.selectFrom('chunks').select(['id', 'blob_key']).where('id', 'in', ids.slice(i, i + ROWS_PER_STATEMENT));
      for (const r of await (pg ? q.forUpdate().skipLocked() : q).execute()) got.set(r.id, r.blob_key);
    }
    return got;
  },

  /** Points a chunk row at a new copy of its bytes, if it still names the old one; false if it was deleted or changed meanwhile. */
  async repoint(trx: Executor, id: string, from: string, to: string): Promise<boolean> {
    const r = await trx.updateTable('chunks').set({ blob_key: to }).where('id', '=', id).where('blob_key', '=', from).executeTakeFirst();
    return r.numUpdatedRows > 0n;
  },
};

export type PackedChunkRow = Pick<ChunkRow, 'id' | 'blob_key' | 'size' | 'hash'>;

/** Just past every pack member key ('0' follows '/'). */
const PACK_KEY_END = `${PACK_KEY_PREFIX.slice(0, -1)}0`;

/** blob_key compared byte by byte: SQLite's own order; on PostgreSQL the `C` collation (migration 0007). */
function bytewiseKey(db: Executor) {
  return db.getExecutor().adapter instanceof PostgresAdapter ? sql<string>`blob_key collate "C"` : sql<string>`blob_key`;
}
