/**
 * Housekeeping that keeps storage bounded: empties old recycle-bin entries,
 * prunes old versions, expires abandoned uploads, collects chunks nothing
 * references and compacts packs that hold mostly collected ones
 * (pack-compactor.ts). Safe with several server processes alive: every
 * deletion is a conditional statement that a concurrent reference makes fail
 * (see ChunksTable and chunkRepository.deleteIfUnreferenced), and compaction
 * moves a row only from the key it still has.
 */
import { isForeignKeyViolation } from '../db/errors.ts';
import { blobBirthTime } from '../db/ids.ts';
import { chunkRepository } from '../repositories/chunk.repository.ts';
import { changeRepository } from '../repositories/change.repository.ts';
import { itemRepository } from '../repositories/item.repository.ts';
import { uploadRepository } from '../repositories/upload.repository.ts';
import { versionRepository } from '../repositories/version.repository.ts';
import type { ServiceDeps } from './context.ts';
import { purgeBatch } from './tree.service.ts';
import { CHUNK_KEY_PREFIXES, ORPHAN_GRACE_MS } from './chunk-writer.ts';
import { PackCompactor, RETIRED_PACK_GRACE_MS, unusedBlob } from './pack-compactor.ts';

const DAY = 86_400_000;
/**
 * A blob without a row that is younger than this may belong to a live upload
 * (ChunkWriter records rows well within it, or fails the upload). Only an
 * operator who knows no server is running may sweep younger ones.
 */
export const MIN_ORPHAN_GRACE_MS = ORPHAN_GRACE_MS;

export interface RetentionPolicy {
  trashRetentionDays: number;
  versionRetentionDays: number;
  maxVersionsPerFile: number;
  gcGraceMs: number;
  changeRetentionDays: number;
}

export interface MaintenanceReport {
  trashPurged: number;
  versionsPruned: number;
  uploadsExpired: number;
  chunksCollected: number;
  orphanBlobsRemoved: number;
  /** Packs whose live chunks were copied to a new pack (see pack-compactor.ts). */
  packsCompacted: number;
  /** What those packs give back once deleted, after the retirement grace. */
  bytesReclaimed: number;
  /** Packs compaction retired that were deleted now. */
  retiredPacksRemoved: number;
  tempFilesRemoved: number;
  changesPruned: number;
}

export class MaintenanceService {
  private readonly deps: ServiceDeps;
  private readonly policy: RetentionPolicy;
  private readonly durable: () => Promise<void>;
  private readonly compactor: PackCompactor;
  /** `durable` resolves once committed metadata is on disk (see MetadataDb.durable). */
  constructor(deps: ServiceDeps, policy: RetentionPolicy, durable: () => Promise<void> = async () => {}) {
    this.deps = deps;
    this.policy = policy;
    this.durable = durable;
    this.compactor = new PackCompactor(deps, durable);
  }

  /**
   * `graceMs`: unreferenced chunks younger than this stay (default: the policy's). `orphanGraceMs`: blobs no row names
   * younger than this stay, and packs younger than it are not compacted. `retiredGraceMs`: packs retired by compaction
   * more recently than this stay, for downloads that may still read them (default RETIRED_PACK_GRACE_MS). Below their
   * defaults the last two are safe only when no server is running.
   */
  async runAll(opts: { graceMs?: number; orphanGraceMs?: number; retiredGraceMs?: number } = {}): Promise<MaintenanceReport> {
    const report: MaintenanceReport = {
      trashPurged: await this.purgeOldTrash(),
      versionsPruned: await this.pruneVersions(),
      uploadsExpired: await uploadRepository.deleteExpired(this.deps.db, this.deps.clock.now()),
      chunksCollected: 0,
      orphanBlobsRemoved: 0,
      packsCompacted: 0,
      bytesReclaimed: 0,
      retiredPacksRemoved: 0,
      tempFilesRemoved: await this.deps.blobs.cleanupAbandoned(),
      changesPruned: await changeRepository.pruneOlderThan(this.deps.db, this.deps.clock.now() - this.policy.changeRetentionDays * DAY),
    };
    report.chunksCollected = await this.collectChunks(opts.graceMs ?? this.policy.gcGraceMs);
    const orphanGraceMs = opts.orphanGraceMs ?? Math.max(opts.graceMs ?? this.policy.gcGraceMs, MIN_ORPHAN_GRACE_MS);
    const retiredGraceMs = opts.retiredGraceMs ?? RETIRED_PACK_GRACE_MS;
    // After collection, so the chunks it just deleted count as dead; before the sweeps, which may then remove the
    // packs it retired if the grace allows (0: no server is running).
    Object.assign(report, await this.compactor.compact(orphanGraceMs));
    report.retiredPacksRemoved = await this.compactor.removeRetired(retiredGraceMs);
    report.orphanBlobsRemoved = await this.removeOrphanBlobs(orphanGraceMs, retiredGraceMs);
    return report;
  }

  async purgeOldTrash(): Promise<number> {
    const cutoff = this.deps.clock.now() - this.policy.trashRetentionDays * DAY;
    let n = 0;
    for (;;) {
      const roots = await itemRepository.trashRootsOlderThan(this.deps.db, cutoff, 100);
      if (!roots.length) return n;
      for (const r of roots) await this.deps.db.transaction().execute((trx) => purgeBatch(trx, r.owner_id, r.id));
      n += roots.length;
    }
  }

  /** Drops earlier versions past the retention window, and beyond the per-file count. Never the current one. */
  async pruneVersions(): Promise<number> {
    const { db, clock } = this.deps;
    const cutoff = clock.now() - this.policy.versionRetentionDays * DAY;
    let n = 0;
    for (;;) {
      const stale = await versionRepository.staleVersions(db, cutoff, 500);
      if (!stale.length) break;
      for (const v of stale) await versionRepository.delete(db, v.id);
      n += stale.length;
    }
    const crowded = await db.selectFrom('versions').select(['item_id', (eb) => eb.fn.countAll<number>().as('n')])
      .groupBy('item_id').having((eb) => eb.fn.countAll(), '>', this.policy.maxVersionsPerFile + 1).execute();
    for (const { item_id } of crowded) {
      const item = await db.selectFrom('items').select('version_id').where('id', '=', item_id).executeTakeFirst();
      const versions = (await versionRepository.listForItem(db, item_id)).filter((v) => v.id !== item?.version_id);
      for (const v of versions.slice(this.policy.maxVersionsPerFile)) {
        await versionRepository.delete(db, v.id);
        n++;
      }
    }
    return n;
  }

  /** Deletes unreferenced chunks older than the grace period: the row first, then the blob. */
  async collectChunks(graceMs: number): Promise<number> {
    const { db, blobs, clock } = this.deps;
    const cutoff = clock.now() - graceMs;
    let n = 0;
    for (;;) {
      const candidates = await chunkRepository.unreferenced(db, cutoff, 500);
      let deletedThisRound = 0;
      const gone: string[] = [];
      for (const c of candidates) {
        try {
          if (await chunkRepository.deleteIfUnreferenced(db, c.id)) gone.push(c.blob_key);
        } catch (e) {
          if (!isForeignKeyViolation(e)) throw e; // referenced meanwhile: keep it
        }
      }
      // The row deletions must be on disk before the blobs go: after a power cut, a row
      // that came back must still find its blob (a later upload may reuse the row).
      if (gone.length) await this.durable();
      for (const key of gone) await blobs.delete(key);
      n += gone.length;
      deletedThisRound = gone.length;
      if (candidates.length < 500 || deletedThisRound === 0) return n;
    }
  }

  /**
   * Removes blobs that no chunk row names (a writer died between storing the
   * blob and recording it). Only blobs whose key says they are older than the
   * grace period: a younger one may be a write about to be recorded. A pack
   * compaction retired less than `retiredGraceMs` ago stays too: a download
   * may still read it (PackCompactor.removeRetired deletes it later).
   */
  async removeOrphanBlobs(graceMs: number, retiredGraceMs = RETIRED_PACK_GRACE_MS): Promise<number> {
    const { db, blobs, clock } = this.deps;
    const cutoff = clock.now() - graceMs;
    const retiredCutoff = clock.now() - retiredGraceMs;
    let n = 0;
    // Another process (`admin gc` beside a server) may have just deleted a pack's last rows: on SQLite they must be
    // on disk before the pack goes, or a power cut could bring back rows that name nothing.
    let synced = false;
    for (const prefix of CHUNK_KEY_PREFIXES) {
      for await (const { key } of blobs.list(prefix)) {
        const born = blobBirthTime(key);
        if (born === null || born >= cutoff) continue;
        if (await unusedBlob(db, key, retiredCutoff)) {
          if (!synced) { await this.durable(); synced = true; }
          await blobs.delete(key);
          n++;
        }
      }
    }
    return n;
  }
}
