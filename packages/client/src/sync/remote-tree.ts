/**
 * Keeps the index's copy of the remote tree current: the change feed from
 * the stored cursor, or — the first time, or when the server says the
 * cursor cannot be continued — a full listing, taken after reading the
 * cursor so nothing that lands during the listing is missed.
 *
 * The server's identity is checked every time: a different instance or
 * drive root means another server or account, and the client stops rather
 * than read an unfamiliar, empty drive as "everything was deleted".
 */
import type { SyncIndex } from '../index/sync-index.ts';
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
    index.clearRemote();
    index.putRemote({ id: drive.rootId, parentId: null, name: '', kind: 'folder', hash: null, size: 0, etag: null, rev: 0 });
    for (const item of items) index.putRemote(toRemoteNode(item));
    index.setMeta('instance_id', drive.instanceId);
    index.setMeta('root_id', drive.rootId);
    index.setMeta('cursor', drive.cursor);
  });
  return { rootId: drive.rootId, changes: items.length, listed: true };
}
