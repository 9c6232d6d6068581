/** Versioned migrations, applied in name order on SQLite and PostgreSQL alike. */
import type { Migration, MigrationProvider } from 'kysely/migration';
import * as initial from './0001-initial.ts';
import * as changeFeed from './0002-change-feed.ts';
import * as accounts from './0003-accounts.ts';
import * as deviceLogin from './0004-device-login.ts';
import * as inlineBlobs from './0005-inline-blobs.ts';
import * as partialTrashIndexes from './0006-partial-trash-indexes.ts';
import * as packMemberIndex from './0007-pack-member-index.ts';
import * as retiredBlobs from './0008-retired-blobs.ts';

const MIGRATIONS: Record<string, Migration> = {
  '0001-initial': initial,
  '0002-change-feed': changeFeed,
  '0003-accounts': accounts,
  '0004-device-login': deviceLogin,
  '0005-inline-blobs': inlineBlobs,
  '0006-partial-trash-indexes': partialTrashIndexes,
  '0007-pack-member-index': packMemberIndex,
  '0008-retired-blobs': retiredBlobs,
};

export const migrationProvider: MigrationProvider = {
  async getMigrations() {
    return MIGRATIONS;
  },
};
