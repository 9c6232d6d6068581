/** Versions and their chunk manifests. */
import type { Selectable } from 'kysely';
import { CofferError } from '@coffer/protocol';
import type { VersionsTable } from '../db/schema.ts';
import type { Executor } from './executor.ts';
import { preparedInsert, preparedQuery, type Params } from '../db/prepared-query.ts';

export type VersionRow = Selectable<VersionsTable>;
export interface ManifestEntry { seq: number; offset: number; size: number; blob_key: string; hash: string }
export interface ChunkRef { chunkId: string; size: number }

/** A version's chunks in order, with where each is stored. */
function manifestQuery(db: Executor, versionId: string) {
  return db.selectFrom('version_chunks').innerJoin('chunks', 'chunks.id', 'version_chunks.chunk_id')
    .select(['version_chunks.seq', 'version_chunks.offset', 'version_chunks.size', 'chunks.blob_key', 'chunks.hash'])
    .where('version_chunks.version_id', '=', versionId).orderBy('version_chunks.seq');
}

const manifestOf = preparedQuery((db, p: Params<{ versionId: string }>) => manifestQuery(db, p('versionId')));
/** Every download of a small file runs this. */
const manifestWithSmallChunksOf = preparedQuery((db, p: Params<{ versionId: string }>) =>
  manifestQuery(db, p('versionId')).leftJoin('inline_blobs', 'inline_blobs.key', 'chunks.blob_key').select('inline_blobs.data'));

/** Every upload writes a version and, for a small file, a one-chunk manifest. */
const insertVersion = preparedInsert('versions');
const insertVersionChunk = preparedInsert('version_chunks');

export const versionRepository = {
  async insert(db: Executor, row: VersionRow, chunks: ChunkRef[]): Promise<void> {
    await insertVersion.run(db, row);
    let offset = 0;
    const rows = chunks.map((c, seq) => {
      const r = { version_id: row.id, seq, chunk_id: c.chunkId, offset, size: c.size };
      offset += c.size;
      return r;
    });
    if (rows.length === 1) return void (await insertVersionChunk.run(db, rows[0]!));
    // Batches keep each statement under SQLite's bound-parameter limit.
    for (let i = 0; i < rows.length; i += 150) {
      await db.insertInto('version_chunks').values(rows.slice(i, i + 150)).execute();
    }
  },

  /** Copies a manifest to a new version row (file copy, restore): no chunk is stored twice. */
  async cloneManifest(db: Executor, fromVersionId: string, to: VersionRow): Promise<void> {
    await db.insertInto('versions').values(to).execute();
    await db.insertInto('version_chunks')
      .columns(['version_id', 'seq', 'chunk_id', 'offset', 'size'])
      .expression((eb) => eb.selectFrom('version_chunks')
        .select([eb.val(to.id).as('version_id'), 'seq', 'chunk_id', 'offset', 'size'])
        .where('version_id', '=', fromVersionId))
      .execute();
    // Version pruning does not take the drive lock: if the source vanished between the caller's
    // read and this copy, the new manifest is short. Refuse rather than commit a truncated file.
    const copied = await db.selectFrom('version_chunks').select((eb) => eb.fn.coalesce(eb.fn.sum<number>('size'), eb.val(0)).as('bytes'))
      .where('version_id', '=', to.id).executeTakeFirstOrThrow();
    if (Number(copied.bytes) !== to.size) throw new CofferError('NOT_FOUND', 'That version was removed meanwhile.');
  },

  async findById(db: Executor, itemId: string, versionId: string): Promise<VersionRow | undefined> {
    return db.selectFrom('versions').selectAll().where('id', '=', versionId).where('item_id', '=', itemId).executeTakeFirst();
  },

  async listForItem(db: Executor, itemId: string): Promise<VersionRow[]> {
    return db.selectFrom('versions').selectAll().where('item_id', '=', itemId)
      .orderBy('created_at', 'desc').orderBy('id', 'desc').execute();
  },

  async manifest(db: Executor, versionId: string): Promise<ManifestEntry[]> {
    return manifestOf.all(db, { versionId });
  },

  /**
   * The manifest with the bytes of every chunk kept in the metadata database (`data`; null for chunks stored
   * elsewhere, or a row that is missing): a small file is read in one query. Only for versions small enough to
   * hold in memory.
   */
  async manifestWithSmallChunks(db: Executor, versionId: string): Promise<(ManifestEntry & { data: Buffer | null })[]> {
    const rows = await manifestWithSmallChunksOf.all(db, { versionId });
    return rows.map((r) => ({ ...r, data: (r.data as Buffer | null) ?? null }));
  },

  async delete(db: Executor, versionId: string): Promise<void> {
    await db.deleteFrom('versions').where('id', '=', versionId).execute();
  },

  /** Earlier (non-current) versions created before `cutoff`. */
  async staleVersions(db: Executor, cutoff: number, limit: number): Promise<VersionRow[]> {
    return db.selectFrom('versions').innerJoin('items', 'items.id', 'versions.item_id')
      .selectAll('versions')
      .where('versions.created_at', '<', cutoff)
      .where((eb) => eb('items.version_id', 'is', null).or('items.version_id', '!=', eb.ref('versions.id')))
      .limit(limit).execute();
  },
};
