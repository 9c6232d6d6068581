/**
 * Blobs as rows of the metadata database (`inline_blobs`): where Coffer keeps
 * small chunks. A 4 KiB file stored as a file of its own costs a create, a
 * write, two fsyncs and a rename (most of a small upload's time on a VM, where
 * every fsync is a trip through the hypervisor); as a row it costs an INSERT
 * in a database that is written anyway. Object stores (Ceph's BlueStore,
 * for one) keep small objects beside their metadata for the same reason.
 *
 * Durability: the chunk writer inserts a small chunk's row in the transaction that records its chunk row
 * (insertInlineBlobs), so both commit together or not at all. `put` resolves once the row is committed. On SQLite that commit
 * is not yet fsynced (synchronous = NORMAL; see group-sync.ts), but it is in
 * the same write-ahead log as every later commit, so a commit that points at
 * the blob cannot reach the disk without it: exactly the order the chunk
 * invariant needs ("a chunk is durable before any metadata points at it").
 * PostgreSQL commits durably itself. (A state-changing request is answered
 * only after the WAL's group fsync, which covers the row too.)
 */
import { Readable } from 'node:stream';
import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import type { Executor } from '../repositories/executor.ts';
import { preparedInsert } from '../db/prepared-query.ts';
import {
  assertValidKey,
  assertValidPrefix,
  assertValidRange,
  BlobNotFoundError,
  type BlobStat,
  type BlobStore,
  type PutOptions,
} from './blob-store.ts';

/** A blob's size, read from its bytes (SQLite and PostgreSQL both have octet_length; neither reads the bytes for it). */
const SIZE = sql<number>`octet_length(data)`.as('size');

/** A small upload's one chunk. */
const upsertInlineBlob = preparedInsert('inline_blobs', (q) => q.onConflict((oc) => oc.column('key').doUpdateSet((eb) => ({ data: eb.ref('excluded.data') }))));

/**
 * Writes blob rows with whatever executor the caller holds: the chunk writer records small chunks' bytes in the
 * same transaction as the chunk rows that name them (one commit, and atomic), `put` in a statement of its own.
 * Small blobs only: a statement carries up to 64 of them.
 */
export async function insertInlineBlobs(db: Executor, blobs: readonly { key: string; data: Uint8Array }[]): Promise<void> {
  const rows = blobs.map(({ key, data }) => {
    assertValidKey(key);
    return { key, data: Buffer.from(data.buffer, data.byteOffset, data.byteLength) };
  });
  if (rows.length === 1) return void (await upsertInlineBlob.run(db, rows[0]!));
  for (let i = 0; i < rows.length; i += 64) {
    await db.insertInto('inline_blobs').values(rows.slice(i, i + 64))
      .onConflict((oc) => oc.column('key').doUpdateSet((eb) => ({ data: eb.ref('excluded.data') })))
      .execute();
  }
}

export class DatabaseBlobStore implements BlobStore {
  readonly kind = 'database';
  readonly capabilities = { localFiles: false } as const;
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async init(): Promise<void> {}

  async put(key: string, data: Uint8Array, opts?: PutOptions): Promise<void> {
    try {
      await insertInlineBlobs(this.#db, [{ key, data }]);
    } finally {
      opts?.onWritten?.(); // the driver has copied the bytes (or failed)
    }
  }

  async get(key: string, range?: { start: number; end: number }): Promise<Readable> {
    assertValidKey(key);
    if (range) assertValidRange(range);
    const row = await this.#db.selectFrom('inline_blobs').select('data').where('key', '=', key).executeTakeFirst();
    if (!row) throw new BlobNotFoundError(key);
    const data = row.data as Buffer;
    const bytes = range ? data.subarray(range.start, range.end + 1) : data;
    return Readable.from(bytes.length > 0 ? [bytes] : []);
  }

  async stat(key: string): Promise<BlobStat | null> {
    assertValidKey(key);
    const row = await this.#db.selectFrom('inline_blobs').select(SIZE).where('key', '=', key).executeTakeFirst();
    return row ? { size: Number(row.size) } : null;
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    await this.#db.deleteFrom('inline_blobs').where('key', '=', key).execute();
  }

  async *list(prefix: string): AsyncIterable<{ key: string; size: number }> {
    assertValidPrefix(prefix);
    // Keyset pages, so a long listing holds no lock and no more than a page in memory; a range, not LIKE (no escaping, uses the primary key).
    let after: string | null = null;
    for (;;) {
      let q = this.#db.selectFrom('inline_blobs').select(['key', SIZE]).where('key', '>=', prefix);
      if (after !== null) q = q.where('key', '>', after);
      const rows = await q.orderBy('key').limit(1000).execute();
      for (const r of rows) {
        if (!r.key.startsWith(prefix)) return;
        yield { key: r.key, size: Number(r.size) };
      }
      if (rows.length < 1000) return;
      after = rows[rows.length - 1].key;
    }
  }

  /** Writes are transactions: a writer that dies leaves nothing behind. */
  async cleanupAbandoned(): Promise<number> {
    return 0;
  }

  async close(): Promise<void> {}
}
