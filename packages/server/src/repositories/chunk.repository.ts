/**
 * Chunks and the references that keep them alive: version manifests and
 * uploads in progress. Collection relies on the foreign keys: deleting a
 * chunk that something references fails instead of succeeding.
 */
import { sql, type Selectable } from 'kysely';
import type { ChunksTable } from '../db/schema.ts';
import type { Executor } from './executor.ts';

export type ChunkRow = Selectable<ChunksTable>;

export const chunkRepository = {
  /** References an existing chunk from an upload; returns its id, or undefined when the owner has no such chunk. */
  async referenceExisting(db: Executor, uploadId: string, ownerId: string, hash: string): Promise<string | undefined> {
    const row = await db.selectFrom('chunks').select('id').where('owner_id', '=', ownerId).where('hash', '=', hash).executeTakeFirst();
    if (!row) return undefined;
    await db.insertInto('upload_chunks').values({ upload_id: uploadId, chunk_id: row.id })
      .onConflict((oc) => oc.doNothing()).execute();
    return row.id;
  },

  /** Inserts a freshly stored chunk; returns false when the owner already had that hash (a concurrent upload won). */
  async insertIfAbsent(db: Executor, row: ChunkRow): Promise<boolean> {
    const r = await db.insertInto('chunks').values(row).onConflict((oc) => oc.columns(['owner_id', 'hash']).doNothing()).executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0n) > 0;
  },

  async reference(db: Executor, uploadId: string, chunkId: string): Promise<void> {
    await db.insertInto('upload_chunks').values({ upload_id: uploadId, chunk_id: chunkId }).onConflict((oc) => oc.doNothing()).execute();
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

  async keyExists(db: Executor, blobKey: string): Promise<boolean> {
    return !!(await db.selectFrom('chunks').select('id').where('blob_key', '=', blobKey).executeTakeFirst());
  },
};
