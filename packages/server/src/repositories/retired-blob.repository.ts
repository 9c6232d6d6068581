/**
 * Blobs compaction has retired (packs whose live chunks now live in a newer
 * pack): a download planned before the move may still read them, so they are
 * deleted only once retired for a grace period and no row names them. A
 * retirement's time is renewed whenever rows move off the blob again, and a
 * row is removed only if its time is still the one read, so a renewal made
 * meanwhile is never lost.
 */
import type { Executor } from './executor.ts';

export interface RetiredBlob { key: string; retired_at: number }

export const retiredBlobRepository = {
  /** Retires these blobs as of `at` (renewing an earlier retirement). In key order: two compactors wait on their first common key, never on each other. */
  async retire(db: Executor, keys: readonly string[], at: number): Promise<void> {
    for (const key of [...new Set(keys)].sort()) {
      await db.insertInto('retired_blobs').values({ key, retired_at: at })
        .onConflict((oc) => oc.column('key').doUpdateSet({ retired_at: at })).execute();
    }
  },

  /** Whether this blob was retired after `cutoff`: a download may still read it. */
  async retiredAfter(db: Executor, key: string, cutoff: number): Promise<boolean> {
    const row = await db.selectFrom('retired_blobs').select('retired_at').where('key', '=', key).executeTakeFirst();
    return !!row && row.retired_at > cutoff;
  },

  /** Up to `limit` blobs retired at or before `cutoff`, in key order after `after`. */
  async retiredBy(db: Executor, cutoff: number, after: string, limit: number): Promise<RetiredBlob[]> {
    return db.selectFrom('retired_blobs').select(['key', 'retired_at']).where('retired_at', '<=', cutoff)
      .where('key', '>', after).orderBy('key').limit(limit).execute();
  },

  /** Every retired blob (admin check: few, the ones of the last hour or so). */
  async all(db: Executor): Promise<RetiredBlob[]> {
    return db.selectFrom('retired_blobs').select(['key', 'retired_at']).execute();
  },

  /** Forgets a retirement, unless it was renewed since it was read. */
  async forget(db: Executor, r: RetiredBlob): Promise<void> {
    await db.deleteFrom('retired_blobs').where('key', '=', r.key).where('retired_at', '=', r.retired_at).execute();
  },
};
