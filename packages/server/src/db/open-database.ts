/**
 * Opens the metadata database named by the config: SQLite in the data folder
 * by default (WAL, foreign keys on), or PostgreSQL for a postgres:// URL.
 * Migrations run on open, so every process sees the current schema.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import { Kysely, PostgresDialect, type SqliteDatabase, type SqliteStatement } from 'kysely';
import { Migrator } from 'kysely/migration';
import type { Database } from './schema.ts';
import { migrationProvider } from './migrations/index.ts';
import { GroupSync } from './group-sync.ts';
import { SQL_STATS_ENABLED, timedStatement } from './sql-stats.ts';
import { CredentialEpoch } from './credential-epoch.ts';
import { CofferSqliteDialect } from './sqlite-dialect.ts';
import { OPTIONS } from '../config/options.ts';

export type DialectName = 'sqlite' | 'postgres';

export interface MetadataDb {
  readonly db: Kysely<Database>;
  readonly dialect: DialectName;
  /** Resolves once every transaction committed so far is on disk (group commit on SQLite; PostgreSQL commits durably itself). */
  durable(): Promise<void>;
  /**
   * SQLite: a number that changes whenever what a credential check reads may have changed (see credential-epoch.ts),
   * so checked credentials can be kept in memory. Null on PostgreSQL, where other processes write unseen.
   */
  readonly credentialEpoch: (() => number) | null;
  close(): Promise<void>;
}

// PostgreSQL returns int8 as strings; every bigint we store (bytes, ms) fits a double exactly.
pg.types.setTypeParser(20, (v: string) => Number(v));

export function isPostgresUrl(url: string | null | undefined): url is string {
  return !!url && /^postgres(ql)?:\/\//.test(url);
}

/** SQLite's page cache when the caller does not say: the setting's default (SQLite's own is 2 MiB). */
const DEFAULT_SQLITE_CACHE_MIB: number = OPTIONS.find((o) => o.key === 'sqliteCacheMib')!.default;

export async function openDatabase(opts: { databaseUrl: string | null; dataDir: string; migrate?: boolean; sqliteCacheMib?: number }): Promise<MetadataDb> {
  let db: Kysely<Database>;
  let dialect: DialectName;
  let groupSync: GroupSync | null = null;
  let epoch: CredentialEpoch | null = null;
  if (isPostgresUrl(opts.databaseUrl)) {
    const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: 10 });
    // An idle connection that the server ends (restart, failover, pg_terminate_backend) is dropped from the
    // pool and replaced on next use; without a listener, that 'error' event would crash the process.
    pool.on('error', () => {});
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    dialect = 'postgres';
  } else {
    const url = opts.databaseUrl ?? '';
    const file = url.replace(/^sqlite:(\/\/)?/, '') || join(opts.dataDir, 'coffer.db');
    if (!url) mkdirSync(opts.dataDir, { recursive: true });
    const sqlite = new SQLite(file);
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = NORMAL'); // commits are fsynced by GroupSync before a request is answered
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma('busy_timeout = 5000');
    // Small files' bytes live in this database (inline_blobs): pages kept here are read without a system call.
    sqlite.pragma(`cache_size = ${-1024 * Math.max(1, Math.floor(opts.sqliteCacheMib ?? DEFAULT_SQLITE_CACHE_MIB))}`);
    epoch = new CredentialEpoch(sqlite);
    db = new Kysely<Database>({ dialect: new CofferSqliteDialect({ database: withStatementCache(sqlite) }), plugins: [epoch] });
    groupSync = new GroupSync(`${file}-wal`);
    dialect = 'sqlite';
  }
  if (opts.migrate !== false) await migrateToLatest(db);
  return {
    db, dialect,
    durable: () => groupSync?.sync() ?? Promise.resolve(),
    credentialEpoch: epoch ? () => epoch.current() : null,
    async close() {
      await groupSync?.close();
      await db.destroy(); // SQLite checkpoints and syncs the database file on close
    },
  };
}

export async function migrateToLatest(db: Kysely<Database>): Promise<void> {
  const migrator = new Migrator({ db, provider: migrationProvider });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    throw new Error(`database migration failed${failed ? ` at ${failed.migrationName}` : ''}: ${(error as Error)?.message ?? error}`);
  }
}

/**
 * Kysely prepares every query anew; on SQLite, preparing costs more than
 * running most of our queries. The set of distinct SQL texts is small and
 * fixed (batched inserts vary only by row count), so a plain map suffices.
 * Safe because better-sqlite3 runs each statement to completion synchronously
 * (we never use streaming iteration).
 */
function withStatementCache(sqlite: SQLite.Database): SqliteDatabase {
  const cache = new Map<string, SQLite.Statement>();
  return {
    close: () => sqlite.close(),
    prepare(text: string) {
      let stmt = cache.get(text);
      if (!stmt) {
        stmt = sqlite.prepare(text);
        if (cache.size < 2000) cache.set(text, stmt);
      }
      if (SQL_STATS_ENABLED) return timedStatement(text, stmt);
      return stmt as unknown as SqliteStatement;
    },
  };
}
