/** What services are built from. Each service takes only the parts it uses. */
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import type { BlobStore } from '../blobstore/blob-store.ts';

export interface Clock { now(): number }
export const systemClock: Clock = { now: () => Date.now() };

export interface ServiceDeps {
  db: Kysely<Database>;
  blobs: BlobStore;
  clock: Clock;
}

/** The authenticated caller, as the auth hook hands it to services. */
export interface Principal {
  userId: string;
  username: string;
  rootId: string;
  isAdmin: boolean;
}
