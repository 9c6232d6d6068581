/**
 * Streaming uploads. The body is cut by the shared content-defined chunker
 * while it arrives (constant memory), each chunk is stored durably, and only
 * then does one transaction create or update the file: item, version and
 * quota together. An upload that fails or is cut off commits nothing; its
 * chunks are left for the garbage collector.
 */
import { chunkStream, CofferError, normalizeName } from '@coffer/protocol';
import { newId } from '../db/ids.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { itemRepository, type ItemRow } from '../repositories/item.repository.ts';
import { uploadRepository } from '../repositories/upload.repository.ts';
import { userRepository } from '../repositories/user.repository.ts';
import { versionRepository, type ChunkRef } from '../repositories/version.repository.ts';
import type { ChangeOp } from '../repositories/change.repository.ts';
import type { Executor } from '../repositories/executor.ts';
import { ChunkWriter, manifestHash, mapCollected } from './chunk-writer.ts';
import { takeChunkBuffer } from './chunk-buffers.ts';
import { collectYoungGarbage } from './young-gc.ts';

/** See young-gc.ts. Every 4 MiB rather than 8: the dead socket buffers between two collections are most of an upload's memory growth. */
const YOUNG_GC_EVERY_BYTES = 4 << 20;
import type { Principal, ServiceDeps } from './context.ts';
import { ChangeLog } from './change-log.ts';
import type { TreeService } from './tree.service.ts';

export interface UploadTarget {
  /** Write a file named `name` in folder `parentId`… */
  parentId?: string;
  name?: string;
  /** …or a new version of the existing file `itemId`. */
  itemId?: string;
  /** The folder `parentId` as the caller has just read it (a live folder): the check before the body is read need not read it again. */
  parent?: ItemRow;
}

export interface UploadConditions {
  /** The content ETag the caller last saw (If-Match); stale → VERSION_CONFLICT. */
  ifMatch?: string;
  /** If-None-Match: * — the file must not exist yet. */
  mustNotExist?: boolean;
  /** Bytes announced by Content-Length, when known. */
  expectedLength?: number;
}

export interface UploadResult { item: ItemRow; created: boolean }

export interface UploadLimits {
  maxUploadBytes: number;
  uploadLeaseMs: number;
}

export function contentEtag(item: Pick<ItemRow, 'version_id' | 'id' | 'rev'>): string {
  return `"${item.version_id ?? `${item.id}.${item.rev}`}"`;
}

export class UploadService {
  private readonly deps: ServiceDeps;
  private readonly tree: TreeService;
  private readonly limits: UploadLimits;
  /** Uploads in progress on this process, for /metrics. */
  active = 0;

  private readonly log: ChangeLog;

  constructor(deps: ServiceDeps, tree: TreeService, limits: UploadLimits) {
    this.deps = deps;
    this.log = new ChangeLog(deps);
    this.tree = tree;
    this.limits = limits;
  }

  async upload(p: Principal, target: UploadTarget, body: AsyncIterable<Uint8Array>, cond: UploadConditions = {}): Promise<UploadResult> {
    // Check what can be checked before reading a byte.
    const name = target.name === undefined ? undefined : normalizeName(target.name);
    await this.precheck(p, target, name, cond);
    const writer = new ChunkWriter(this.deps, p.userId, this.limits.uploadLeaseMs);
    this.active++;
    try {
      let total = 0;
      let collectedAt = 0;
      for await (const chunk of chunkStream(body, undefined, takeChunkBuffer)) {
        total += chunk.byteLength;
        if (this.limits.maxUploadBytes > 0 && total > this.limits.maxUploadBytes) throw new CofferError('PAYLOAD_TOO_LARGE', undefined, { limit: this.limits.maxUploadBytes });
        await writer.add(chunk);
        if (total - collectedAt >= YOUNG_GC_EVERY_BYTES) {
          collectedAt = total;
          collectYoungGarbage();
        }
      }
      const refs = await writer.finish();
      if (cond.expectedLength !== undefined && total !== cond.expectedLength) {
        throw new CofferError('UPLOAD_INCOMPLETE', undefined, { expected: cond.expectedLength, received: total });
      }
      return await this.commit(p, target, name, cond, writer, total, manifestHash(refs.map((r) => r.hash)));
    } finally {
      this.active--;
      await writer.release(); // the lease would expire anyway; chunks without a version go to the collector
    }
  }

  private async precheck(p: Principal, target: UploadTarget, name: string | undefined, cond: UploadConditions): Promise<void> {
    const { db } = this.deps;
    if (cond.expectedLength !== undefined && this.limits.maxUploadBytes > 0 && cond.expectedLength > this.limits.maxUploadBytes) {
      throw new CofferError('PAYLOAD_TOO_LARGE', undefined, { limit: this.limits.maxUploadBytes });
    }
    const existing = await findTarget(db, this.tree, p, { ...target, name }, target.parent);
    checkConditions(existing, cond);
    if (cond.expectedLength !== undefined) {
      const user = await userRepository.findById(db, p.userId);
      const growth = cond.expectedLength - (existing?.size ?? 0);
      if (user && user.quota_bytes > 0 && user.used_bytes + growth > user.quota_bytes) {
        throw new CofferError('QUOTA_EXCEEDED', undefined, { quotaBytes: user.quota_bytes, usedBytes: user.used_bytes, neededBytes: growth });
      }
    }
  }

  private async commit(p: Principal, target: UploadTarget, name: string | undefined, cond: UploadConditions, writer: ChunkWriter,
    size: number, contentHash: string): Promise<UploadResult> {
    const { db, blobs } = this.deps;
    let duplicates: string[] = [];
    try {
      const result = await this.log.commit(db, p.userId, async (trx, record) => {
        const r = await writeFile(trx, this.deps, this.tree, p, { ...target, name }, cond, {
          size, contentHash,
          chunks: async () => {
            duplicates = await writer.record(trx);
            return writer.refs;
          },
        }, record);
        if (writer.leaseId) await uploadRepository.delete(trx, writer.leaseId);
        return r;
      });
      for (const key of duplicates) await blobs.delete(key);
      return result;
    } catch (e) {
      // Two uploads created the same new name at once: the loser must not overwrite silently.
      if (isUniqueViolation(e)) throw new CofferError('NAME_CONFLICT', 'Another upload created this file first.', { name });
      throw mapCollected(e);
    }
  }
}

/** The content of one commit: its manifest (resolved once the conditions hold), size and content hash. */
export interface CommitContent {
  size: number;
  contentHash: string;
  chunks: () => Promise<ChunkRef[]>;
}

/**
 * The one way a file's content changes, shared by the streaming upload and
 * the chunk protocol: inside the caller's transaction, checks the target and
 * its conditions, then writes version + manifest, item, quota and the
 * change-feed entry. `target.name` must already be normalized.
 */
export async function writeFile(trx: Executor, deps: Pick<ServiceDeps, 'clock'>, tree: TreeService, p: Principal, target: UploadTarget,
  cond: UploadConditions, content: CommitContent, record: (entries: { op: ChangeOp; item: ItemRow }[]) => Promise<void>,
  /** Accounts the growth instead of `addUsedBytes` (a batch commit keeps one running total); throws QUOTA_EXCEEDED if it does not fit. */
  account?: (growth: number) => void): Promise<UploadResult> {
  const now = deps.clock.now();
  const { size, contentHash } = content;
  const name = target.name;
  const existing = await findTarget(trx, tree, p, target);
  checkConditions(existing, cond);
  const refs = await content.chunks();
  const versionId = newId();
  let item: ItemRow;
  if (existing) {
    item = { ...existing, version_id: versionId, size, content_hash: contentHash, modified_at: now, rev: existing.rev + 1 };
    await versionRepository.insert(trx, { id: versionId, item_id: existing.id, owner_id: p.userId, size, content_hash: contentHash, created_at: now }, refs);
    if (!(await itemRepository.setContent(trx, existing.id, { versionId, size, contentHash, now, expectedRev: existing.rev }))) {
      // A concurrent commit won between our read and our write (PostgreSQL re-checks the row): tell the loser what is current.
      const current = await itemRepository.findById(trx, p.userId, existing.id);
      throw new CofferError('VERSION_CONFLICT', undefined, current ? { currentEtag: contentEtag(current) } : undefined);
    }
  } else {
    item = {
      id: newId(), owner_id: p.userId, parent_id: target.parentId!, name: name!, kind: 'file', size, content_hash: contentHash,
      version_id: versionId, rev: 1, created_at: now, modified_at: now, trashed_at: null, trash_batch: null,
    };
    await itemRepository.insert(trx, item);
    await versionRepository.insert(trx, { id: versionId, item_id: item.id, owner_id: p.userId, size, content_hash: contentHash, created_at: now }, refs);
  }
  const growth = size - (existing?.size ?? 0);
  if (account) account(growth);
  else if (!(await userRepository.addUsedBytes(trx, p.userId, growth))) throw new CofferError('QUOTA_EXCEEDED', undefined, { neededBytes: growth });
  await record([{ op: existing ? 'update' : 'create', item }]);
  return { item, created: !existing };
}

/**
 * The file an upload would replace, if any: the item named by id (must be a
 * live file), or the live child of that name in the live target folder
 * (a folder of that name is a NAME_CONFLICT). `target.name` must be normalized.
 */
async function findTarget(db: Executor, tree: TreeService, p: Principal, target: UploadTarget,
  /** The parent folder, live, as just read outside any transaction: only the check before the body may use it; a commit reads it again. */
  parentRead?: ItemRow): Promise<ItemRow | undefined> {
  if (target.itemId) {
    const item = await tree.getLive(p, target.itemId, db);
    if (item.kind !== 'file') throw new CofferError('NOT_A_FILE');
    return item;
  }
  if (parentRead?.id !== target.parentId) await tree.getLiveFolder(p, target.parentId!, db);
  const existing = await itemRepository.findLiveChild(db, target.parentId!, target.name!);
  if (existing?.kind === 'folder') throw new CofferError('NAME_CONFLICT', 'A folder with this name already exists.', { name: target.name });
  return existing;
}

export function checkConditions(existing: ItemRow | undefined, cond: UploadConditions): void {
  if (cond.mustNotExist && existing) {
    throw new CofferError('VERSION_CONFLICT', 'The file already exists.', { currentEtag: contentEtag(existing) });
  }
  if (cond.ifMatch !== undefined) {
    if (!existing) throw new CofferError('VERSION_CONFLICT', 'The file does not exist.');
    const tags = cond.ifMatch.split(',').map((t) => t.trim());
    if (!tags.includes('*') && !tags.includes(contentEtag(existing))) {
      throw new CofferError('VERSION_CONFLICT', undefined, { currentEtag: contentEtag(existing) });
    }
  }
}
