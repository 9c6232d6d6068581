/**
 * A query built and compiled once per dialect, then run with new parameter
 * values: for the reads every request makes (path walk, manifest), Kysely's
 * builder and compiler cost more than SQLite's own lookup (~3 µs against ~4
 * in a hot loop, 2–3× that on a busy server). The SQL text is the same every
 * time, so the statement cache in open-database.ts prepares it once as well.
 *
 * Usage (the row type comes from the builder, the parameters from `p`'s type):
 *   const childByName = preparedQuery((db, p: Params<{ parentId: string; name: string }>) =>
 *     db.selectFrom('items').selectAll().where('parent_id', '=', p('parentId')).where('name', '=', p('name')));
 *   const row = await childByName.first(db, { parentId, name });
 *
 * Rules that keep this honest:
 *   - A write may be prepared only if the credential epoch would let it by
 *     (credential-epoch.ts counts writes as they are compiled, and a prepared
 *     one is compiled once): its statement is the same on every run, so that
 *     is decided once, when it is built, and a write to sessions,
 *     credentials, devices or users is refused there. Used for the rows every
 *     upload inserts (see preparedInsert).
 *   - A parameter stands for one bound value (`=`, `<`, …), never a list,
 *     an identifier or a piece of SQL: the builder only ever sees a marker.
 *   - Compiled once per dialect adapter, so the same query runs on the
 *     database or inside one of its transactions (Kysely gives both the same
 *     adapter), and on SQLite and PostgreSQL side by side in the tests.
 */
import { createQueryId, type Compilable, type CompiledQuery, type DialectAdapter, type InsertQueryBuilder, type InsertResult } from 'kysely';
import type { Executor } from '../repositories/executor.ts';
import type { Database } from './schema.ts';
import { mayChangeCredentials } from './credential-epoch.ts';

/** Stands for a parameter while the query is compiled; replaced by the caller's value on every run. */
class Param {
  readonly name: string;
  constructor(name: string) {
    this.name = name;
  }
}

/** Names a parameter of the query being built (its value arrives on every run). */
export type Params<P extends Record<string, unknown>> = <K extends keyof P & string>(name: K) => P[K];

export interface PreparedQuery<P, O> {
  /** Every row. */
  all(db: Executor, params: P): Promise<O[]>;
  /** The first row, if any. */
  first(db: Executor, params: P): Promise<O | undefined>;
}

export function preparedQuery<P extends Record<string, unknown>, O>(
  build: (db: Executor, param: Params<P>) => Compilable<O>,
): PreparedQuery<P, O> {
  const compiled = new WeakMap<DialectAdapter, CompiledQuery<O>>();
  const param: Params<P> = (name) => new Param(name) as never;

  function compiledFor(db: Executor): CompiledQuery<O> {
    const adapter = db.getExecutor().adapter;
    let q = compiled.get(adapter);
    if (!q) {
      q = build(db, param).compile();
      if (mayChangeCredentials(q.query)) {
        throw new Error(`a prepared write must not touch what a credential check reads: ${q.sql}`);
      }
      compiled.set(adapter, q);
    }
    return q;
  }

  async function all(db: Executor, params: P): Promise<O[]> {
    const q = compiledFor(db);
    const parameters = q.parameters.map((v) => (v instanceof Param ? params[v.name] : v));
    const { rows } = await db.executeQuery<O>({ ...q, parameters, queryId: createQueryId() });
    return rows;
  }

  return {
    all,
    async first(db, params) {
      return (await all(db, params))[0];
    },
  };
}

/**
 * One row into `table`, every value a parameter: compiled once per dialect and set of columns (the row's own
 * keys), then run with each row's values. `modify` adds what follows the values (ON CONFLICT, RETURNING).
 */
export function preparedInsert<T extends keyof Database & string, O = never>(
  table: T,
  modify?: (q: InsertQueryBuilder<Database, T, InsertResult>) => Compilable<O>,
): { run(db: Executor, row: Record<string, unknown>): Promise<O[]> } {
  const byColumns = new Map<string, PreparedQuery<Record<string, unknown>, O>>();
  return {
    run(db, row) {
      const columns = Object.keys(row);
      const key = columns.join(',');
      let q = byColumns.get(key);
      if (!q) {
        q = preparedQuery((qdb, p: Params<Record<string, unknown>>) => {
          const insert = qdb.insertInto(table).values(Object.fromEntries(columns.map((c) => [c, p(c)])) as never);
          return modify ? modify(insert) : (insert as unknown as Compilable<O>);
        });
        byColumns.set(key, q);
      }
      return q.all(db, row);
    },
  };
}
