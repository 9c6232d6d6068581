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
  /** Base32 TOTP secret while two-factor is on (it must be readable to check codes, so it cannot be hashed). */
  totp_secret: string | null;
  /** A secret offered by setup, waiting for its first code. */
  totp_pending_secret: string | null;
  /** The last TOTP time step accepted: a code of that step or earlier is a replay. */
  totp_last_step: number | null;
  password_changed_at: number | null;
}

export type DeviceKind = 'browser' | 'sync' | 'app_password';

/**
 * Something signed in to an account: a browser, a sync client, or an app
 * password. A device that signs in again presents its device key and keeps
 * its record. A wipe, once requested, stays pending until the device
 * confirms it, whatever happens to its sessions meanwhile.
 */
export interface DevicesTable {
  id: string;
  user_id: string;
  name: string;
  kind: DeviceKind;
  platform: string | null;
  user_agent: string | null;
  ip: string | null;
  /** SHA-256 of the device key the device presents when it signs in again. */
  device_key_hash: string | null;
  created_at: number;
  last_seen_at: number;
  /** Local changes not yet uploaded, as the device last reported. */
  pending_changes: number | null;
  pending_reported_at: number | null;
  wipe_requested_at: number | null;
  wipe_fetched_at: number | null;
  wipe_confirmed_at: number | null;
  /** The device's JSON report: what it removed and what it kept. */
  wipe_report: string | null;
}

export type SessionKind = 'cookie' | 'bearer' | 'app_password';

/**
 * One sign-in. It ends when revoked, or when idle for `idle_timeout_ms`
 * (short for a public computer, longer when "keep me signed in" was
 * chosen). `last_seen_at` is written at most once a minute, not per request.
 */
export interface SessionsTable {
  id: string;
  user_id: string;
  device_id: string;
  kind: SessionKind;
  /** 1 when "keep me signed in" was chosen (or for sync clients and app passwords). */
  persistent: number;
  idle_timeout_ms: number;
  /** 2FA is required by the admin and the user has none yet: only enrollment is allowed. */
  mfa_enrollment_required: number;
  ip: string | null;
  user_agent: string | null;
  created_at: number;
  last_seen_at: number;
  revoked_at: number | null;
  revoked_reason: string | null;
}

export type CredentialKind = 'cookie' | 'access' | 'refresh' | 'app_password';

/**
 * A secret that authenticates a session, stored as its SHA-256. A session
 * has several over its life: the access and refresh tokens rotate; a refresh
 * token is used once (`used_at`), and a second use revokes the session.
 */
export interface CredentialsTable {
  hash: string;
  session_id: string;
  kind: CredentialKind;
  created_at: number;
  expires_at: number | null;
  used_at: number | null;
}

/** A sign-in that passed the password and waits for its second factor. `request` is the sign-in's JSON. */
export interface LoginChallengesTable {
  hash: string;
  user_id: string;
  request: string;
  created_at: number;
  expires_at: number;
}

export interface RecoveryCodesTable {
  id: string;
  user_id: string;
  code_hash: string;
  created_at: number;
  used_at: number | null;
}

export interface PasswordResetsTable {
  token_hash: string;
  user_id: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
}

export type DeviceLoginStatus = 'pending' | 'approved' | 'denied' | 'used';

/**
 * A device sign-in request (RFC 8628 style): made by a sync client, approved
 * or denied in a signed-in browser by whoever holds the user code, then
 * exchanged once for a session. The approval binds `user_id`.
 * `interval_seconds` is the polling interval, grown by every SLOW_DOWN.
 */
export interface DeviceLoginsTable {
  /** SHA-256 of the device code the client polls with. */
  device_code_hash: string;
  /** SHA-256 of the normalized user code (upper case, no dash). */
  user_code_hash: string;
  /** The name the device asked for. */
  device_name: string;
  platform: string | null;
  /** Where the request came from (shown on the approval page). */
  ip: string | null;
  user_agent: string | null;
  created_at: number;
  expires_at: number;
  interval_seconds: number;
  last_polled_at: number | null;
  status: DeviceLoginStatus;
  user_id: string | null;
  /** The device name the approving user chose (else `device_name`). */
  approved_name: string | null;
  approver_session_id: string | null;
  decided_at: number | null;
  used_at: number | null;
}

/** Failed attempts per key (an account or an IP, per kind of attempt), shared by every server process. */
export interface ThrottleTable {
  key: string;
  failures: number;
  last_failure_at: number;
  blocked_until: number;
}

/** A security event. `detail` is JSON. */
export interface AuditEventsTable {
  id: string;
  user_id: string | null;
  at: number;
  type: string;
  device_id: string | null;
  session_id: string | null;
  ip: string | null;
  user_agent: string | null;
  detail: string | null;
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

/** Small chunks' bytes, by blob key (DatabaseBlobStore). */
export interface InlineBlobsTable {
  key: string;
  data: Uint8Array;
}

/**
 * A blob compaction has emptied (a pack whose live chunks were copied to a new
 * one): kept until `retired_at` is old enough that no download planned
 * before the move can still read it (services/pack-compactor.ts).
 */
export interface RetiredBlobsTable {
  key: string;
  retired_at: number;
}

export interface Database {
  users: UsersTable;
  devices: DevicesTable;
  sessions: SessionsTable;
  credentials: CredentialsTable;
  login_challenges: LoginChallengesTable;
  recovery_codes: RecoveryCodesTable;
  password_resets: PasswordResetsTable;
  device_logins: DeviceLoginsTable;
  throttle: ThrottleTable;
  audit_events: AuditEventsTable;
  items: ItemsTable;
  versions: VersionsTable;
  version_chunks: VersionChunksTable;
  chunks: ChunksTable;
  uploads: UploadsTable;
  upload_chunks: UploadChunksTable;
  server_info: ServerInfoTable;
  changes: ChangesTable;
  inline_blobs: InlineBlobsTable;
  retired_blobs: RetiredBlobsTable;
}

