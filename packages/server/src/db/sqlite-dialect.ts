/**
 * Kysely's SQLite dialect with one change: every bound parameter is written
 * `+?` instead of `?`.
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
 * Given up for it: the LIKE prefix optimisation needs a bare parameter. No
 * query of ours uses LIKE on an indexed column with a parameter.
 */
import { SqliteDialect, SqliteQueryCompiler, type QueryCompiler } from 'kysely';

/** The placeholder every parameter is compiled to (tests read it). */
export const SQLITE_PARAMETER = '+?';

class PlainParameterCompiler extends SqliteQueryCompiler {
  protected override getCurrentParameterPlaceholder(): string {
    return SQLITE_PARAMETER;
  }
}

export class CofferSqliteDialect extends SqliteDialect {
  override createQueryCompiler(): QueryCompiler {
    return new PlainParameterCompiler();
  }
}
