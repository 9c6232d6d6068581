/**
 * Diagnostic for profiling (not a setting): with COFFER_SQL_STATS=1 in the
 * environment, every SQLite statement is timed by its SQL text, and SIGUSR2
 * prints the 40 costliest texts (count, total ms) to stderr. Off by default,
 * and then costs nothing: the check is made once, at start-up.
 */
import type { SqliteStatement } from 'kysely';
import type SQLite from 'better-sqlite3';

export const SQL_STATS_ENABLED = process.env.COFFER_SQL_STATS === '1';

const stats = new Map<string, { n: number; ms: number }>();
let listening = false;

/** The statement, timed under its text. */
export function timedStatement(text: string, stmt: SQLite.Statement): SqliteStatement {
  if (!listening) {
    listening = true;
    process.on('SIGUSR2', () => {
      for (const [sql, s] of [...stats].sort((a, b) => b[1].ms - a[1].ms).slice(0, 40)) {
        process.stderr.write(`${s.n} ${s.ms.toFixed(0)}ms ${sql.slice(0, 220)}\n`);
      }
    });
  }
  const timed = (fn: 'all' | 'run' | 'iterate' | 'get') => (...args: unknown[]) => {
    const t0 = performance.now();
    try {
      return (stmt[fn] as (...a: unknown[]) => unknown)(...args);
    } finally {
      const s = stats.get(text) ?? { n: 0, ms: 0 };
      s.n++;
      s.ms += performance.now() - t0;
      stats.set(text, s);
    }
  };
  return { reader: stmt.reader, all: timed('all'), run: timed('run'), iterate: timed('iterate'), get: timed('get') } as unknown as SqliteStatement;
}
