/**
 * The metadata model, as Kysely table types. Times are epoch milliseconds
 * (bigint in PostgreSQL, read back as numbers); booleans are 0/1 integers so
 * the same queries run on SQLite and PostgreSQL.
 */

/** An account. `used_bytes` is kept in step with items in the same transaction as every change. */
export interface UsersTable {
  id: string;
  username: string;
  email: string | null;
  password_hash: string;
  is_admin: number;
  /** 0 = unlimited */
  quota_bytes: number;
  used_bytes: number;
  root_id: string;
  created_at: number;
  /** Last change number of this drive (see ChangesTable). */
  change_seq: number;
  /** Changes up to this number were deleted by retention. */
  changes_pruned_through: number;
}

/** Stand-in bearer tokens until the accounts issue replaces them; only the SHA-256 of a token is stored. */
export interface ApiTokensTable {
  id: string;
  user_id: string;
  token_hash: string;
  name: string;
  created_at: number;
}

/**
 * Files and folders. An item keeps its id for life (rename and move keep it).
 * `rev` grows on every change and is the item's ETag. Trashing sets
 * `trashed_at` on the item and every live descendant, all tagged with the
 * same `trash_batch` (the id of the item the user deleted) so a restore brings
 * back exactly what that delete hid. Names are unique among live siblings.
 */
export interface ItemsTable {
  id: string;
  owner_id: string;
  parent_id: string | null;
  name: string;
  kind: 'file' | 'folder';
  size: number;
  content_hash: string | null;
  version_id: string | null;
  rev: number;
  created_at: number;
  modified_at: number;
  trashed_at: number | null;
  trash_batch: string | null;
}

/** Every stored content of a file, the current one included. */
export interface VersionsTable {
  id: string;
  item_id: string;
  owner_id: string;
  size: number;
  content_hash: string;
  created_at: number;
}

/** A version's manifest: its chunks in order, with their byte offsets. */
export interface VersionChunksTable {
  version_id: string;
  seq: number;
  chunk_id: string;
  offset: number;
  size: number;
}

/**
 * A stored chunk: content-addressed by SHA-256 within one owner's drive
 * (never shared across users). `blob_key` carries a fresh generation suffix,
 * so a chunk collected and later uploaded again never reuses a key that a
 * slow delete could still remove.
 */
export interface ChunksTable {
  id: string;
  owner_id: string;
  hash: string;
  size: number;
  blob_key: string;
  created_at: number;
}

/** An upload in progress; its chunk references keep the garbage collector away. */
export interface UploadsTable {
  id: string;
  owner_id: string;
  created_at: number;
  expires_at: number;
}

export interface UploadChunksTable {
  upload_id: string;
  chunk_id: string;
}

/**
 * One entry of a drive's change feed: what an item looked like right after
 * the change. `op` is create, update, move, delete (a tombstone) or restore.
 */
export interface ChangesTable {
  owner_id: string;
  seq: number;
  item_id: string;
  op: 'create' | 'update' | 'move' | 'delete' | 'restore';
  kind: 'file' | 'folder';
  parent_id: string | null;
  name: string;
  size: number;
  content_hash: string | null;
  version_id: string | null;
  rev: number;
  at: number;
}

/** Facts about this installation, such as its instance id. */
export interface ServerInfoTable {
  key: string;
  value: string;
}

export interface Database {
  users: UsersTable;
  api_tokens: ApiTokensTable;
  items: ItemsTable;
  versions: VersionsTable;
  version_chunks: VersionChunksTable;
  chunks: ChunksTable;
  uploads: UploadsTable;
  upload_chunks: UploadChunksTable;
  server_info: ServerInfoTable;
  changes: ChangesTable;
}

