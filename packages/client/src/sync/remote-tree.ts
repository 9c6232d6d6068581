/**
 * Keeps the index's copy of the remote tree current: the change feed from
 * the stored cursor, or — the first time, or when the server says the
 * cursor cannot be continued — a full listing, taken after reading the
 * cursor so nothing that lands during the listing is missed.
 *
 * The server's identity is checked every time: a different instance or
 * drive root means another server or account, and the client stops rather
 * than read an unfamiliar, empty drive as "everything was deleted".
 *
 * A drive that is suddenly empty with the same identity may be a real
 * deletion, or a server restored from an empty backup, or an account
 * emptied by mistake: when the base held many items and the plan would
 * delete them here, the run stops and asks (checkDriveEmptied) unless the
 * user confirmed (`--yes`).
 */
import type { SyncIndex } from '../index/sync-index.ts';
import type { Plan } from '../reconciler/plan.ts';
import type { Tree } from '../reconciler/tree.ts';
import { toRemoteNode, type RemoteItemLike } from '../transfer/remote-executor.ts';

export interface RemoteReader {
  drive(): Promise<{ instanceId: string; rootId: string; cursor: string }>;
  changes(cursor: string, limit?: number): Promise<{ changes: { position: number; op: string; item: RemoteItemLike }[]; cursor: string; hasMore: boolean }>;
  listTree(rootId: string): Promise<RemoteItemLike[]>;
}

export class IdentityChangedError extends Error {
  readonly code = 'SERVER_IDENTITY_CHANGED';
  constructor(what: string) {
    super(`The server's ${what} changed since this folder was linked: it is another server, a reinstalled one, or another account. Nothing was synced; link the folder again if this is intended.`);
    this.name = 'IdentityChangedError';
  }
}

export class RemoteDriveEmptyError extends Error {
  readonly code = 'REMOTE_DRIVE_EMPTY';
  readonly synced: number;
  readonly localDeletes: number;
  constructor(synced: number, localDeletes: number) {
    super(`The server's drive is empty, but ${synced} items were in sync with it: this sync would delete ${localDeletes} items in the folder. Nothing was deleted; check the server (its recycle bin, a restored backup), then run again with --yes if everything was meant to go.`);
    this.name = 'RemoteDriveEmptyError';
    this.synced = synced;
    this.localDeletes = localDeletes;
  }
}

/** Fewer synced items than this, and an empty drive is just a small deletion (the general delete valve still applies). */
export const EMPTY_DRIVE_MIN_SYNCED = 5;

/** Throws RemoteDriveEmptyError when the drive has nothing in it, the base held many items, and the plan deletes local ones. */
export function checkDriveEmptied(remote: Tree, base: Tree, p: Pick<Plan, 'ops'>, allow = false): void {
  if (allow) return;
  const remoteItems = remote.nodes.size - (remote.nodes.has(remote.rootId) ? 1 : 0);
  const synced = base.nodes.size - (base.nodes.has(base.rootId) ? 1 : 0);
  const localDeletes = p.ops.filter((o) => o.side === 'local' && o.type === 'delete').length;
  if (remoteItems === 0 && synced >= EMPTY_DRIVE_MIN_SYNCED && localDeletes > 0) throw new RemoteDriveEmptyError(synced, localDeletes);
}

/**
 * The index's "the last run ended in agreement" flag (sync-engine.ts skips reading the remote tree while
 * it holds and nothing new came in). Whoever applies remote changes clears it: `status` reads the feed too,
 * and a change it consumed must still be planned by the next sync.
 */
export const QUIET = 'quiet';

export async function refreshRemote(api: RemoteReader, index: SyncIndex): Promise<{ rootId: string; changes: number; listed: boolean }> {
  const drive = await api.drive();
  const knownInstance = index.getMeta('instance_id');
  const knownRoot = index.getMeta('root_id');
  if (knownInstance && knownInstance !== drive.instanceId) throw new IdentityChangedError('instance id');
  if (knownRoot && knownRoot !== drive.rootId) throw new IdentityChangedError('drive root');
  const cursor = index.getMeta('cursor');
  if (cursor) {
    try {
      let at = cursor;
      let count = 0;
      for (;;) {
        const page = await api.changes(at);
        index.transaction(() => {
          if (page.changes.length > 0) index.setMeta(QUIET, null);
          for (const c of page.changes) {
            if (c.op === 'delete') index.deleteRemote(c.item.id);
            else index.putRemote(toRemoteNode(c.item));
          }
          index.setMeta('cursor', page.cursor);
        });
        count += page.changes.length;
        at = page.cursor;
        if (!page.hasMore) return { rootId: drive.rootId, changes: count, listed: false };
      }
    } catch (e) {
      if ((e as { code?: string }).code !== 'RESYNC_REQUIRED') throw e;
    }
  }
  const items = await api.listTree(drive.rootId);
  index.transaction(() => {
    index.setMeta(QUIET, null);
    index.clearRemote();
    index.putRemote({ id: drive.rootId, parentId: null, name: '', kind: 'folder', hash: null, size: 0, etag: null, rev: 0 });
    for (const item of items) index.putRemote(toRemoteNode(item));
    index.setMeta('instance_id', drive.instanceId);
    index.setMeta('root_id', drive.rootId);
    index.setMeta('cursor', drive.cursor);
  });
  return { rootId: drive.rootId, changes: items.length, listed: true };
}
