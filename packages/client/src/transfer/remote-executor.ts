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
}

export interface RemoteExecutorHooks {
  /** The server's state of an item after a step (or null once it is in the recycle bin). */
  remoteChanged(id: string, item: RemoteNode | null): void;
  /** A local item now has the server's id. */
  rekey(localId: string, serverId: string): void;
  /** The absolute local path of an item, for uploads. */
  localPath(id: string): string | null;
  remoteNode(id: string): RemoteNode | undefined;
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
