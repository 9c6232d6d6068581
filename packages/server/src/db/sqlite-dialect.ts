/**
 * Kysely's SQLite dialect with two changes: every bound parameter is written
 * `+?` instead of `?`, and every transaction begins IMMEDIATE.
 *
 * Why: with a bare `?` in a join (`version_chunks join chunks … where
 * version_id = ?`), SQLite's planner looks at the bound value and marks the
 * statement to be compiled again whenever that value changes, so a cached
 * statement was parsed and planned anew on every run: ~10 µs of a small
 * download's ~25 µs manifest read, counted with a probe on sqlite3Reprepare.
 * Unary plus is SQLite's no-op operator: the value, its type and the column
 * affinity a comparison applies are the same, and an index is still used for
 * `col = +?` (a plus only stops that when it is put on the column). The
 * planner simply cannot peek at the value any more, so one plan serves every
 * value, which is also what it does for a single-table query.
 *
 * Given up for it: the LIKE prefix optimisation needs a bare parameter, and
 * so does a partial index whose condition compares a column to a value
 * (`where kind = 'folder'`: with `kind = +?` SQLite cannot tell the index
 * applies and scans). No query of ours uses LIKE on an indexed column with a
 * parameter, and every partial index's condition is IS [NOT] NULL
 * (sqlite-dialect.test.ts checks the schema for it).
 */
import { CompiledQuery, SqliteDialect, SqliteDriver, SqliteQueryCompiler, type DatabaseConnection, type Driver, type QueryCompiler } from 'kysely';

/** The placeholder every parameter is compiled to (tests read it). */
export const SQLITE_PARAMETER = '+?';

class UnaryPlusParameterCompiler extends SqliteQueryCompiler {
  protected override getCurrentParameterPlaceholder(): string {
    return SQLITE_PARAMETER;
  }
}

/**
 * `BEGIN IMMEDIATE`: a transaction holds the database's write lock from its start, as a writer of a drive must
 * (change.repository.ts lockDrive; on PostgreSQL that is a row lock). A deferred BEGIN took it only at the first
 * write, and a transaction that read first could then find another process's commit newer than what it had read
 * (SQLITE_BUSY_SNAPSHOT, not retried). Every transaction of ours is there to write (one that finds nothing to do,
 * a purge of an item already gone say, holds the lock for its few reads), so none waits for a lock it would not
 * have taken anyway, and the busy timeout applies to BEGIN like any write. A read-only transaction, should one
 * ever be needed, would want a deferred BEGIN.
 */
class ImmediateTransactionDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

export class CofferSqliteDialect extends SqliteDialect {
  readonly #config: ConstructorParameters<typeof SqliteDialect>[0];

  constructor(config: ConstructorParameters<typeof SqliteDialect>[0]) {
    super(config);
    this.#config = config;
  }

  override createDriver(): Driver {
    return new ImmediateTransactionDriver(this.#config);
  }

  override createQueryCompiler(): QueryCompiler {
    return new UnaryPlusParameterCompiler();
  }
}
