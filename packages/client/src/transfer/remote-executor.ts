/**
 * Carries out the planner's remote steps through the API. Every write is
 * conditional on what the client last saw (the ETag of the version it
 * replaces, the item's rev for moves and deletes), so a change another
 * device made meanwhile is never overwritten: the server answers 412, the
 * step is skipped, and the next round merges the newer state.
 *
 * An upload counts as done only when the server's confirmation carries the
 * content hash computed locally (uploadFile checks it).
 */
import type { Op } from '../reconciler/plan.ts';
import { isLocalId } from '../reconciler/tree.ts';
import type { RemoteNode } from '../index/sync-index.ts';
import type { StepOutcome } from './local-executor.ts';

export interface RemoteItemLike {
  id: string;
  parentId: string | null;
  name: string;
  kind: 'file' | 'folder';
  size: number;
  contentHash: string | null;
  etag: string;
  rev: number;
}

/** The part of the API client the executor uses. */
export interface RemoteWriter {
  mkdir(parentId: string, name: string): Promise<RemoteItemLike>;
  move(id: string, to: { parentId?: string; name?: string; ifRev?: number }): Promise<RemoteItemLike>;
  trash(id: string, opts: { ifRev?: number }): Promise<void>;
  upload(localPath: string, target: { parentId: string; name: string } | { itemId: string; ifMatch: string }): Promise<{ item: RemoteItemLike; contentHash: string }>;
  /** Many small files with a few requests (optional: without it each file is uploaded on its own). */
  uploadBatch?(files: { key: string; path: string; target: { parentId: string; name: string } | { itemId: string; ifMatch: string } }[]):
    Promise<({ key: string; ok: true; item: RemoteItemLike } | { key: string; ok: false; error: Error & { code?: string } })[]>;
}

/** Files up to this size are uploaded in batches. */
export const BATCHABLE_BYTES = 4 * 1024 * 1024;
const BATCH_FILES = 500;
const BATCH_BYTES = 32 * 1024 * 1024;

export interface RemoteExecutorHooks {
  /** The server's state of an item after a step (or null once it is in the recycle bin). */
  remoteChanged(id: string, item: RemoteNode | null): void;
  /** A local item now has the server's id. */
  rekey(localId: string, serverId: string): void;
  /** The absolute local path of an item, for uploads. */
  localPath(id: string): string | null;
  remoteNode(id: string): RemoteNode | undefined;
  /** Runs `fn` (synchronous) with what it records written together: a batch's hundreds of files are one commit, not a few each. */
  grouped?(fn: () => void): void;
}

/** Error codes after which a step is skipped and planned again next round, rather than failing the run. */
const REPLAN = new Set(['VERSION_CONFLICT', 'NAME_CONFLICT', 'NOT_FOUND', 'LOCAL_FILE_CHANGED', 'MOVE_INTO_ITSELF', 'NOT_A_FOLDER']);
/** Error codes that mean the server refuses this item: reported, not retried. */
export const REJECTED = new Set(['QUOTA_EXCEEDED', 'INVALID_NAME', 'PATH_TOO_LONG', 'PAYLOAD_TOO_LARGE']);

export function toRemoteNode(item: RemoteItemLike): RemoteNode {
  return { id: item.id, parentId: item.parentId, name: item.name, kind: item.kind, hash: item.kind === 'file' ? item.contentHash : null, size: item.size, etag: item.etag, rev: item.rev };
}

export class RemoteExecutor {
  private readonly api: RemoteWriter;
  private readonly hooks: RemoteExecutorHooks;
  /** Local ids given server ids during this run. */
  private readonly ids = new Map<string, string>();
  constructor(api: RemoteWriter, hooks: RemoteExecutorHooks) {
    this.api = api;
    this.hooks = hooks;
  }

  resolve(id: string): string {
    return this.ids.get(id) ?? id;
  }

  async run(op: Op): Promise<StepOutcome> {
    try {
      return await this.step(op);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code && REPLAN.has(code)) return { done: false, reason: `${code}: ${(e as Error).message}` };
      throw e;
    }
  }

  /**
   * Uploads: small files in batches (one session, one `missing`, one body of
   * chunks, one `commit-batch` per batch), large ones one by one. Outcomes
   * come back per step, through `done` as each finishes.
   */
  async runWrites(ops: Extract<Op, { type: 'write' }>[], done: (op: Op, outcome: StepOutcome | Error) => void, concurrency = 3): Promise<void> {
    const small = this.api.uploadBatch ? ops.filter((o) => o.size <= BATCHABLE_BYTES) : [];
    const batched = new Set(small);
    const jobs: (() => Promise<void>)[] = [];
    for (const op of ops.filter((o) => !batched.has(o))) jobs.push(async () => done(op, await this.run(op).catch((e: Error) => e)));
    for (let i = 0; i < small.length;) {
      const batch: typeof small = [];
      let bytes = 0;
      while (i < small.length && batch.length < BATCH_FILES && (batch.length === 0 || bytes + small[i].size <= BATCH_BYTES)) {
        bytes += small[i].size;
        batch.push(small[i++]);
      }
      jobs.push(() => this.batch(batch, done));
    }
    let next = 0;
    await Promise.all(Array.from({ length: Math.min(concurrency, jobs.length) }, async () => {
      while (next < jobs.length) await jobs[next++]();
    }));
  }

  private async batch(ops: Extract<Op, { type: 'write' }>[], done: (op: Op, outcome: StepOutcome | Error) => void): Promise<void> {
    const files: { key: string; path: string; target: { parentId: string; name: string } | { itemId: string; ifMatch: string } }[] = [];
    const byKey = new Map<string, Extract<Op, { type: 'write' }>>();
    for (const op of ops) {
      const id = this.resolve(op.id);
      const parentId = this.resolve(op.parentId);
      const path = this.hooks.localPath(op.id);
      if (isLocalId(parentId) || path === null) { done(op, { done: false, reason: path === null ? 'the local file is not there' : 'its folder is not on the server yet' }); continue; }
      const current = isLocalId(id) ? undefined : this.hooks.remoteNode(id);
      files.push({ key: op.id, path, target: current && current.etag ? { itemId: id, ifMatch: current.etag } : { parentId, name: op.name } });
      byKey.set(op.id, op);
    }
    if (!files.length) return;
    let results;
    try {
      results = await this.api.uploadBatch!(files);
    } catch (e) {
      for (const op of byKey.values()) done(op, e as Error);
      return;
    }
    const record = () => {
      for (const r of results) {
        const op = byKey.get(r.key)!;
        if (r.ok) {
          const existing = !isLocalId(this.resolve(op.id)) && this.hooks.remoteNode(this.resolve(op.id))?.etag;
          if (existing) this.hooks.remoteChanged(r.item.id, toRemoteNode(r.item));
          else this.created(op.id, r.item);
          done(op, { done: true });
        } else if (r.error.code && REPLAN.has(r.error.code)) done(op, { done: false, reason: `${r.error.code}: ${r.error.message}` });
        else done(op, r.error);
      }
    };
    if (this.hooks.grouped) this.hooks.grouped(record);
    else record();
  }

  private async step(op: Op): Promise<StepOutcome> {
    const id = this.resolve(op.id);
    if (op.type === 'delete') {
      await this.api.trash(id, { ifRev: this.hooks.remoteNode(id)?.rev });
      this.hooks.remoteChanged(id, null);
      return { done: true };
    }
    const parentId = this.resolve(op.parentId);
    if (isLocalId(parentId)) return { done: false, reason: 'its folder is not on the server yet' };
    if (op.type === 'move') {
      const item = await this.api.move(id, { parentId, name: op.name, ifRev: this.hooks.remoteNode(id)?.rev });
      this.hooks.remoteChanged(item.id, toRemoteNode(item));
      return { done: true };
    }
    if (op.type === 'mkdir') {
      const item = await this.api.mkdir(parentId, op.name);
      this.created(op.id, item);
      return { done: true };
    }
    const path = this.hooks.localPath(op.id);
    if (path === null) return { done: false, reason: 'the local file is not there' };
    const current = isLocalId(id) ? undefined : this.hooks.remoteNode(id);
    const target = current && current.etag ? { itemId: id, ifMatch: current.etag } : { parentId, name: op.name };
    const { item } = await this.api.upload(path, target);
    if (current) this.hooks.remoteChanged(item.id, toRemoteNode(item));
    else this.created(op.id, item);
    return { done: true };
  }

  /** A new server item; the local item (new, or re-created after a remote delete) takes its id. */
  private created(planId: string, item: RemoteItemLike): void {
    if (planId !== item.id) {
      this.ids.set(planId, item.id);
      this.hooks.rekey(planId, item.id);
    }
    this.hooks.remoteChanged(item.id, toRemoteNode(item));
  }
}
