/**
 * Opens what a command needs for one account: its index, its credentials
 * (in the store its configuration names: the OS keyring or a 0600 file),
 * and an API client that keeps them current as tokens rotate. The one place
 * that wires the client's parts together.
 */
import { join } from 'node:path';
import { ApiClient } from '../remote/api-client.ts';
import { uploadFile } from '../remote/upload-file.ts';
import { uploadBatch } from '../transfer/upload-batch.ts';
import { SyncIndex } from '../index/sync-index.ts';
import type { SyncApi } from '../sync/sync-engine.ts';
import type { RemoteItemLike } from '../transfer/remote-executor.ts';
import { AccountStore, type Account } from './account-store.ts';
import { credentialStoreOf, type AccountCredentialStore } from './credential-stores.ts';

export interface OpenedAccount {
  account: Account;
  store: AccountStore;
  api: ApiClient;
  /** The API as the sync engine sees it. */
  syncApi: SyncApi;
  index: SyncIndex;
  credentials: AccountCredentialStore;
  close(): void;
}

/**
 * `allowSignedOut`: open an account whose credentials are gone (a disconnect finishing, a revoked device).
 * Credentials in a keyring that cannot be used now: KEYRING_UNAVAILABLE, saying what to do.
 */
export async function openAccount(store: AccountStore, name?: string, opts: { allowSignedOut?: boolean } = {}): Promise<OpenedAccount> {
  const account = await store.pick(name);
  const dir = store.stateDir(account.name);
  const credentials = credentialStoreOf(store, account);
  if (!opts.allowSignedOut && !(await credentials.load())) {
    throw new Error(`Account "${account.name}" is not signed in on this device (its credentials are gone): run \`coffer login ${account.server} --folder ${account.folder} --name ${account.name}\`.`);
  }
  const api = new ApiClient({ baseUrl: account.server, credentials });
  const index = new SyncIndex(join(dir, 'index.sqlite'));
  const syncApi = syncApiOf(api);
  return { account, store, api, syncApi, index, credentials, close: () => index.close() };
}

/** The API client as the sync engine sees it. */
export function syncApiOf(api: ApiClient): SyncApi {
  return {
    drive: () => api.drive(),
    changes: (cursor, limit) => api.changes(cursor, limit) as ReturnType<SyncApi['changes']>,
    listTree: (rootId) => api.listTree(rootId) as Promise<RemoteItemLike[]>,
    mkdir: (parentId, n) => api.mkdir(parentId, n) as Promise<RemoteItemLike>,
    move: (id, to) => api.move(id, to) as Promise<RemoteItemLike>,
    trash: async (id, opts) => { await api.trash(id, opts); },
    upload: async (path, target) => {
      const r = await uploadFile(api, path, target);
      return { item: r.item as RemoteItemLike, contentHash: r.contentHash };
    },
    uploadBatch: async (files) => (await uploadBatch(api, files)).map((r) => (r.ok ? { key: r.key, ok: true as const, item: r.item as RemoteItemLike } : r)),
    download: (id) => api.download(id),
    reportPendingChanges: async (n) => { await api.reportPendingChanges(n); },
  };
}
