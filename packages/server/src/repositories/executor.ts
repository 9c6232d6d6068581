import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../db/schema.ts';

/** Either the database or an open transaction: repository functions run in whichever they are given. */
export type Executor = Kysely<Database> | Transaction<Database>;
