/**
 * A fresh PostgreSQL database per test file on the machine's server
 * (127.0.0.1:5432, trust auth). When PostgreSQL is not reachable, tests that
 * need it are skipped with a message saying so, never silently passed.
 */
import pg from 'pg';
import { randomBytes } from 'node:crypto';

export const PG_ADMIN_URL = process.env.COFFER_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

let available: Promise<string | null> | undefined;

/** Null when PostgreSQL answers; otherwise the reason it cannot be used. */
export function postgresUnavailable(): Promise<string | null> {
  available ??= (async () => {
    const client = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 2000 });
    try {
      await client.connect();
      await client.query('select 1');
      return null;
    } catch (e) {
      return `PostgreSQL not reachable at ${PG_ADMIN_URL.replace(/\/\/[^@]*@/, '//')}: ${(e as Error).message}`;
    } finally {
      await client.end().catch(() => {});
    }
  })();
  return available;
}

export async function createTestDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `coffer_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = PG_ADMIN_URL.replace(/\/[^/]*$/, `/${name}`);
  return {
    url,
    async drop() {
      const c = new pg.Client({ connectionString: PG_ADMIN_URL });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}
