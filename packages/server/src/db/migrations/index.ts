/** Versioned migrations, applied in name order on SQLite and PostgreSQL alike. */
import type { Migration, MigrationProvider } from 'kysely/migration';
import * as initial from './0001-initial.ts';

const MIGRATIONS: Record<string, Migration> = {
  '0001-initial': initial,
};

export const migrationProvider: MigrationProvider = {
  async getMigrations() {
    return MIGRATIONS;
  },
};
