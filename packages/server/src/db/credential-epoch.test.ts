/** The credential epoch moves on exactly the writes a credential check could see (a real SQLite file). */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import { openDatabase, type MetadataDb } from './open-database.ts';
import { sessionRepository } from '../repositories/session.repository.ts';
import { createTestDatabase, postgresUnavailable } from '../../test/support/postgres.ts';

describe('credential epoch (SQLite)', () => {
  let dir: string;
  let m: MetadataDb;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'coffer-epoch-'));
    m = await openDatabase({ databaseUrl: null, dataDir: dir });
    await m.db.insertInto('users').values({ id: 'u1', username: 'ann', password_hash: 'x', root_id: 'r1', created_at: 1, is_admin: 0, quota_bytes: 0, used_bytes: 0, change_seq: 0, changes_pruned_through: 0 } as never).execute();
  });
  after(async () => {
    await m.close();
    await rm(dir, { recursive: true, force: true });
  });

  const epoch = () => m.credentialEpoch!();

  it('reads and drive counters leave it; writes to users, sessions, credentials and devices move it', async () => {
    const e0 = epoch();
    await m.db.selectFrom('sessions').selectAll().execute();
    await m.db.updateTable('users').set((eb) => ({ change_seq: eb('change_seq', '+', 1) })).where('id', '=', 'u1').execute();
    await m.db.updateTable('users').set({ used_bytes: 10 }).where('id', '=', 'u1').execute();
    await m.db.insertInto('items').values({
      id: 'r1', owner_id: 'u1', parent_id: null, name: '', kind: 'folder', size: 0, content_hash: null, version_id: null, rev: 1,
      created_at: 1, modified_at: 1, trashed_at: null, trash_batch: null,
    }).execute();
    assert.equal(epoch(), e0, 'nothing a credential check reads changed');

    const steps: [string, () => Promise<unknown>][] = [
      ['users.is_admin', () => m.db.updateTable('users').set({ is_admin: 1 }).where('id', '=', 'u1').execute()],
      ['users: a counter and more', () => m.db.updateTable('users').set({ used_bytes: 0, username: 'anna' }).where('id', '=', 'u1').execute()],
      ['devices insert', () => m.db.insertInto('devices').values({
        id: 'd1', user_id: 'u1', kind: 'sync', name: 'laptop', platform: null, user_agent: null, ip: null, device_key_hash: null,
        created_at: 1, last_seen_at: 1, pending_changes: null, pending_reported_at: null, wipe_requested_at: null, wipe_fetched_at: null, wipe_confirmed_at: null,
      } as never).execute()],
      ['sessions delete', () => m.db.deleteFrom('sessions').where('user_id', '=', 'u1').execute()],
      ['credentials delete', () => m.db.deleteFrom('credentials').where('session_id', '=', 'none').execute()],
      ['a transaction that rolls back', () => m.db.transaction().execute(async (trx) => {
        await trx.updateTable('devices').set({ wipe_requested_at: 5 }).where('id', '=', 'd1').execute();
        throw new Error('roll back');
      }).catch(() => {})],
    ];
    for (const [what, step] of steps) {
      const before = epoch();
      await step();
      assert.notEqual(epoch(), before, what);
    }
  });

  it('a session\'s or device\'s activity alone leaves it (the cache is told instead); with anything else it moves', async () => {
    await m.db.insertInto('devices').values({
      id: 'd9', user_id: 'u1', kind: 'sync', name: 'desk', platform: null, user_agent: null, ip: null, device_key_hash: null,
      created_at: 1, last_seen_at: 1, pending_changes: null, pending_reported_at: null, wipe_requested_at: null, wipe_confirmed_at: null,
    } as never).execute();
    const e0 = epoch();
    await sessionRepository.touch(m.db, 's-none', 'd9', 5, '127.0.0.9');
    await sessionRepository.touch(m.db, 's-none', 'd9', 6, null);
    assert.equal(epoch(), e0, 'activity is not a change a check must see from the epoch');
    const moves: [string, () => Promise<unknown>][] = [
      ['sessions: activity and a revocation', () => m.db.updateTable('sessions').set({ last_seen_at: 7, revoked_at: 7 }).where('id', '=', 's-none').execute()],
      ['sessions: idle timeout', () => m.db.updateTable('sessions').set({ idle_timeout_ms: 1 }).where('id', '=', 's-none').execute()],
      ['devices: activity and a wipe', () => m.db.updateTable('devices').set({ last_seen_at: 8, wipe_requested_at: 8 }).where('id', '=', 'd9').execute()],
      ['sessions: last_seen_at alone but not the marked activity write (moving it back, say)', () => m.db.updateTable('sessions').set({ last_seen_at: 0 }).where('id', '=', 's-none').execute()],
      ['devices: ip alone, unmarked', () => m.db.updateTable('devices').set({ ip: '10.0.0.1' }).where('id', '=', 'd9').execute()],
    ];
    for (const [what, step] of moves) {
      const before = epoch();
      await step();
      assert.notEqual(epoch(), before, what);
    }
  });

  it('moves when another connection commits, whatever it wrote', async () => {
    const e0 = epoch();
    assert.equal(epoch(), e0);
    const other = new SQLite(join(dir, 'coffer.db'));
    try {
      other.prepare('update items set rev = rev + 1').run();
    } finally {
      other.close();
    }
    assert.notEqual(epoch(), e0);
  });

  it('moves while this connection is inside a transaction (data_version stays at its snapshot); no other process commits meanwhile', async () => {
    let inside!: () => void;
    let release!: () => void;
    const reading = new Promise<void>((r) => { inside = r; });
    const held = new Promise<void>((r) => { release = r; });
    const trx = m.db.transaction().execute(async (t) => {
      await t.selectFrom('items').selectAll().execute(); // a read: the transaction holds a snapshot
      inside();
      await held;
    });
    await reading;
    try {
      const during = epoch();
      assert.notEqual(epoch(), during, 'nothing can be known inside a transaction: the epoch cannot stand still');
      // And our transactions begin IMMEDIATE (sqlite-dialect.ts): another process cannot commit a revocation under it.
      const other = new SQLite(join(dir, 'coffer.db'), { timeout: 0 });
      try {
        assert.throws(() => other.prepare("update sessions set revoked_at = 1 where id = 'none'").run(), { code: 'SQLITE_BUSY' });
      } finally {
        other.close();
      }
    } finally {
      release(); // a failed assertion must not leave the connection held for the tests that follow
      await trx;
    }
  });

  it('moves again when a write has run, not only when it was compiled (it may wait for the connection in between)', async () => {
    const pending = m.db.updateTable('sessions').set({ revoked_at: 2 }).where('id', '=', 'none').execute();
    const compiled = epoch(); // a credential read now would see the row as it was before the write
    await pending;
    assert.notEqual(epoch(), compiled);
  });

  it('PostgreSQL has none: other processes write there unseen', async (t) => {
    const skip = await postgresUnavailable();
    if (skip) return t.skip(skip);
    const pg = await createTestDatabase();
    const other = await openDatabase({ databaseUrl: pg.url, dataDir: dir });
    try {
      assert.equal(other.credentialEpoch, null);
    } finally {
      await other.close();
      await pg.drop();
    }
  });
});
