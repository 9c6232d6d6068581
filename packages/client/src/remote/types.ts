/**
 * The shapes the Coffer API answers with (docs/openapi.json), as the client
 * sees them. Hand-written rather than derived from the server's TypeBox
 * schemas so the client does not load the schema library; the e2e tests
 * against a real server keep them honest.
 */

/** The server's Item schema. */
export interface RemoteItem {
  /** Stable: survives rename and move. */
  id: string;
  /** null only for the root. */
  parentId: string | null;
  /** NFC-normalized; empty for the root. */
  name: string;
  kind: 'file' | 'folder';
  size: number;
  /** SHA-256 over the chunk digests of the current version; null for folders. */
  contentHash: string | null;
  /** The content ETag, for ifMatch. */
  etag: string;
  /** Grows on every change; pass as ifRev for conditional moves and deletes. */
  rev: number;
  createdAt: string;
  modifiedAt: string;
  /** Only for items in the recycle bin. */
  trashedAt?: string;
}

/** GET /api/v1/drive: who the client is talking to, and "now" in the change feed. */
export interface DriveInfo {
  instanceId: string;
  rootId: string;
  cursor: string;
}

export type ChangeOp = 'create' | 'update' | 'move' | 'delete' | 'restore';

/** The item as of a change (the feed leaves out the timestamps). */
export type ChangedItem = Pick<RemoteItem, 'id' | 'parentId' | 'name' | 'kind' | 'size' | 'contentHash' | 'etag' | 'rev'>;

export interface Change {
  position: number;
  op: ChangeOp;
  at: string;
  item: ChangedItem;
}

export interface ChangePage {
  changes: Change[];
  cursor: string;
  hasMore: boolean;
}

export interface Me {
  id: string;
  username: string;
  isAdmin: boolean;
  rootId: string;
  /** 0 = unlimited. */
  quotaBytes: number;
  usedBytes: number;
}

/** POST /api/v1/uploads. */
export interface UploadSession {
  uploadId: string;
  expiresAt: string;
  chunking: { algorithm: string; min: number; avg: number; max: number; normalization: number; hash: string };
}

/** Where a commit puts the file: a new name in a folder, or a new version of an existing file. */
export type CommitTarget = { parentId: string; name: string; itemId?: never } | { itemId: string; parentId?: never; name?: never };

/** One file of a commit, exactly as the server's FileCommit schema. */
export type CommitFile = CommitTarget & {
  /** The content ETag this commit replaces (412 VERSION_CONFLICT if stale). */
  ifMatch?: string;
  /** Create only (412 VERSION_CONFLICT if the name exists). */
  mustNotExist?: boolean;
  /** The manifest: chunk hashes in file order. */
  chunks: string[];
  size: number;
};

export interface WipeStatus {
  wipe: boolean;
  requestedAt: number | null;
}

export interface WipeReport {
  removedCount: number;
  removed?: string[];
  /** Files kept because their content was not confirmed in the cloud. */
  kept: { path: string; reason: string }[];
}

/** One Server-Sent Event of the push channel: ready, changed, revoked. `data` is the raw JSON text. */
export interface PushEvent {
  event: string;
  data: string;
  id?: string;
}
