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

export interface ServiceDeps {
  db: Kysely<Database>;
  blobs: BlobStore;
  clock: Clock;
  publisher: ChangePublisher;
}

/** The authenticated caller, as the auth hook hands it to services. */
export interface Principal {
  userId: string;
  username: string;
  rootId: string;
  isAdmin: boolean;
}
