/**
 * `coffer admin check`: verifies that metadata and stored chunks agree and
 * lists every mismatch. Read-only. With `deep`, re-reads every chunk and
 * compares its SHA-256.
 */
import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import type { ServiceDeps } from './context.ts';
import { blobBirthTime } from '../db/ids.ts';
import { CHUNK_KEY_PREFIXES } from './chunk-writer.ts';
import { storedBlobKey } from '../blobstore/packed.blob-store.ts';
import { retiredBlobRepository } from '../repositories/retired-blob.repository.ts';

/** `error`: data at risk or inconsistent. `notice`: harmless leftovers the collector removes. */
export interface CheckProblem { kind: string; severity: 'error' | 'notice'; detail: string }
export interface CheckReport {
  users: number;
  items: number;
  versions: number;
  chunks: number;
  blobs: number;
  problems: CheckProblem[];
}

export class StorageCheckService {
  private readonly deps: Pick<ServiceDeps, 'db' | 'blobs'>;
  constructor(deps: Pick<ServiceDeps, 'db' | 'blobs'>) {
    this.deps = deps;
  }

  async check(opts: { deep?: boolean } = {}): Promise<CheckReport> {
    const { db, blobs } = this.deps;
    const problems: CheckProblem[] = [];
    const count = async (t: 'users' | 'items' | 'versions' | 'chunks') =>
      Number((await db.selectFrom(t).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);

    // Every chunk row has a blob of the right size (and content, when deep).
    const chunkRows = await db.selectFrom('chunks').select(['id', 'blob_key', 'size', 'hash']).execute();
    const keys = new Set<string>();
    for (const c of chunkRows) {
      keys.add(storedBlobKey(c.blob_key)); // a pack is named through its members
      const st = await blobs.stat(c.blob_key);
      if (!st) { problems.push({ kind: 'missing-blob', severity: 'error', detail: `chunk ${c.id} (${c.blob_key})` }); continue; }
      if (st.size !== c.size) problems.push({ kind: 'blob-size', severity: 'error', detail: `chunk ${c.id}: stored ${st.size} bytes, expected ${c.size}` });
      if (opts.deep) {
        const h = createHash('sha256');
        for await (const b of await blobs.get(c.blob_key)) h.update(b as Buffer);
        if (h.digest('hex') !== c.hash) problems.push({ kind: 'blob-hash', severity: 'error', detail: `chunk ${c.id}: content does not match its SHA-256` });
      }
    }
    // Blobs no row names: harmless leftovers of a crash that the collector removes once old enough, or packs
    // compaction emptied, kept for a while for the downloads that may still read them (pack-compactor.ts).
    const retired = new Map((await retiredBlobRepository.all(db)).map((r) => [r.key, r.retired_at]));
    let blobCount = 0;
    for (const prefix of CHUNK_KEY_PREFIXES) {
      for await (const { key } of blobs.list(prefix)) {
        blobCount++;
        if (keys.has(key)) continue;
        const at = retired.get(key);
        if (at !== undefined) problems.push({ kind: 'retired-pack', severity: 'notice', detail: `${key} (compacted ${new Date(at).toISOString()}); \`coffer admin gc\` removes it once no download can still read it` });
        else problems.push({ kind: 'orphan-blob', severity: 'notice', detail: `${key} (written ${new Date(blobBirthTime(key) ?? 0).toISOString()}); \`coffer admin gc\` removes it` });
      }
    }

    // Every file points at a version of its own whose manifest adds up.
    const files = await db.selectFrom('items').leftJoin('versions', 'versions.id', 'items.version_id')
      .select(['items.id', 'items.size', 'items.content_hash', 'items.version_id', 'versions.item_id as v_item', 'versions.size as v_size', 'versions.content_hash as v_hash'])
      .where('items.kind', '=', 'file').execute();
    for (const f of files) {
      if (!f.version_id || f.v_item !== f.id) { problems.push({ kind: 'file-without-version', severity: 'error', detail: `item ${f.id}` }); continue; }
      if (f.v_size !== f.size || f.v_hash !== f.content_hash) problems.push({ kind: 'file-version-mismatch', severity: 'error', detail: `item ${f.id}` });
    }
    const manifests = await db.selectFrom('versions').leftJoin('version_chunks', 'version_chunks.version_id', 'versions.id')
      .select(['versions.id', 'versions.size', (eb) => eb.fn.coalesce(eb.fn.sum<number>('version_chunks.size'), sql<number>`0`).as('sum'),
        (eb) => eb.fn.count<number>('version_chunks.seq').as('n'), (eb) => eb.fn.coalesce(eb.fn.max<number>('version_chunks.seq'), sql<number>`-1`).as('maxseq')])
      .groupBy(['versions.id', 'versions.size']).execute();
    for (const m of manifests) {
      if (Number(m.sum) !== m.size) problems.push({ kind: 'manifest-size', severity: 'error', detail: `version ${m.id}: chunks add up to ${m.sum}, expected ${m.size}` });
      if (Number(m.maxseq) !== Number(m.n) - 1) problems.push({ kind: 'manifest-gap', severity: 'error', detail: `version ${m.id}: chunk sequence has gaps` });
    }
    // Live items sit in live folders of the same owner.
    const strays = await db.selectFrom('items as c').innerJoin('items as p', 'p.id', 'c.parent_id')
      .select(['c.id']).where((eb) => eb.or([eb('p.kind', '!=', 'folder'), eb('p.owner_id', '!=', eb.ref('c.owner_id')),
        eb.and([eb('c.trashed_at', 'is', null), eb('p.trashed_at', 'is not', null)])])).execute();
    for (const s of strays) problems.push({ kind: 'bad-parent', severity: 'error', detail: `item ${s.id}` });

    // Usage matches the files each user holds (live and in the bin).
    const usage = await db.selectFrom('users').leftJoin('items', (j) => j.onRef('items.owner_id', '=', 'users.id').on('items.kind', '=', 'file'))
      .select(['users.username', 'users.used_bytes', (eb) => eb.fn.coalesce(eb.fn.sum<number>('items.size'), sql<number>`0`).as('actual')])
      .groupBy(['users.id', 'users.username', 'users.used_bytes']).execute();
    for (const u of usage) {
      if (Number(u.actual) !== u.used_bytes) problems.push({ kind: 'usage-mismatch', severity: 'error', detail: `user ${u.username}: recorded ${u.used_bytes} bytes, holds ${u.actual}` });
    }
    return { users: await count('users'), items: await count('items'), versions: await count('versions'), chunks: chunkRows.length, blobs: blobCount, problems };
  }
}
