/** What services are built from. Each service takes only the parts it uses. */
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import type { BlobStore } from '../blobstore/blob-store.ts';

export interface Clock { now(): number }
export const systemClock: Clock = { now: () => Date.now() };

/** Told after a drive's change feed advanced (the transaction has committed). Push channels listen here. */
export interface ChangePublisher {
  published(ownerId: string, seq: number): void;
}
export const noPublisher: ChangePublisher = { published() {} };

/** A credential (a token; later a session) or every credential of a user that stopped being valid. */
export interface Revocation {
  credentialKey?: string;
  userId?: string;
}
/** Told after a revocation committed. Push channels authenticated with it close at once, on every process. */
export interface RevocationPublisher {
  revoked(r: Revocation): void;
}
export const noRevocations: RevocationPublisher = { revoked() {} };

export interface ServiceDeps {
  db: Kysely<Database>;
  blobs: BlobStore;
  clock: Clock;
  publisher: ChangePublisher;
  /** Absent where nothing listens (tools, unit tests). */
  revocations?: RevocationPublisher;
  /** Moves whenever what a credential check reads may have changed (SQLite only, see db/credential-epoch.ts); absent: no credential is kept in memory. */
  credentialEpoch?: (() => number) | null;
  /** Chunks up to this size are stored under INLINE_KEY_PREFIX (the metadata database, see app.ts); 0 or absent: never. */
  inlineMaxBytes?: number;
}

/**
 * What a restricted session may still do: a device marked for wipe may only
 * fetch and confirm the wipe; a user who must turn on 2FA may only do that.
 */
export type Restriction = 'wipe' | 'mfa-enrollment';

/** The authenticated caller, as the auth hook hands it to services. */
export interface Principal {
  userId: string;
  username: string;
  rootId: string;
  isAdmin: boolean;
  /** Names the credential this request authenticated with (the session id, never a secret); revoking it closes push channels opened with it. */
  credentialKey?: string;
  sessionId?: string;
  deviceId?: string;
  /** How the request authenticated: a browser cookie, a bearer access token, or an app password over basic auth. */
  via?: 'cookie' | 'bearer' | 'basic';
  restriction?: Restriction;
}
