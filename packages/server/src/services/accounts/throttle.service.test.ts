/**
 * Throttle delays as pure arithmetic, and the counters on a real SQLite
 * database: attempts counted before the check, refunded on success, blocked
 * attempts not counted, delays that expire and double, and concurrent
 * attempts each counted once.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CofferError } from '@coffer/protocol';
import { openDatabase, type MetadataDb } from '../../db/open-database.ts';
import { throttleRepository } from '../../repositories/throttle.repository.ts';
import { delayAfter, POLICIES, ThrottleService, type ThrottleKey } from './throttle.service.ts';

describe('delayAfter', () => {
  it('is free for the first failures, then doubles from the base delay up to the cap', () => {
    const p = POLICIES.account;
    assert.deepEqual([0, 1, 5].map((n) => delayAfter(n, p)), [0, 0, 0]);
    assert.deepEqual([6, 7, 8, 9].map((n) => delayAfter(n, p)), [2_000, 4_000, 8_000, 16_000]);
    assert.equal(delayAfter(14, p), 512_000);
    assert.equal(delayAfter(15, p), 15 * 60_000, 'capped at 15 minutes');
    assert.equal(delayAfter(1_000_000, p), 15 * 60_000, 'no overflow for absurd counts');
    assert.equal(delayAfter(20, POLICIES.ip), 0);
    assert.equal(delayAfter(21, POLICIES.ip), 1_000);
    assert.equal(delayAfter(22, POLICIES.ip), 2_000);
  });
});

describe('ThrottleService on SQLite', () => {
  let dir: string;
  let metadata: MetadataDb;
  let now = 1_800_000_000_000;
  let throttle: ThrottleService;
  const account = (k: string): ThrottleKey => ({ key: k, policy: POLICIES.account });
  const ip = (k: string): ThrottleKey => ({ key: k, policy: POLICIES.ip });
  const retryAfter = async (p: Promise<unknown>): Promise<number | null> => {
    try {
      await p;
      return null;
    } catch (e) {
      assert.ok(e instanceof CofferError && e.code === 'TOO_MANY_ATTEMPTS', String(e));
      return (e.details as { retryAfterSeconds: number }).retryAfterSeconds;
    }
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'coffer-throttle-'));
    metadata = await openDatabase({ databaseUrl: null, dataDir: dir });
    throttle = new ThrottleService({ db: metadata.db, clock: { now: () => now } });
  });
  after(async () => {
    await metadata?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('counts each attempt; the sixth failure starts a 2 s delay; a blocked attempt is not counted; the delay expires and then doubles', async () => {
    const k = [account('t:user:1')];
    for (let i = 1; i <= 6; i++) assert.equal(await retryAfter(throttle.attempt(k)), null, `attempt ${i}`);
    assert.equal((await throttleRepository.find(metadata.db, 't:user:1'))?.failures, 6);
    assert.equal(await retryAfter(throttle.attempt(k)), 2);
    now += 1_500;
    assert.equal(await retryAfter(throttle.attempt(k)), 1, 'rounded up');
    assert.equal((await throttleRepository.find(metadata.db, 't:user:1'))?.failures, 6, 'blocked attempts are not counted');
    now += 500;
    assert.equal(await retryAfter(throttle.attempt(k)), null, 'the delay expired');
    assert.equal(await retryAfter(throttle.attempt(k)), 4, 'and the next one is twice as long');
  });

  it('success starts an account over, and gives an IP its attempt back', async () => {
    const keys = [account('t:user:2'), ip('t:ip:2')];
    for (let i = 0; i < 4; i++) await throttle.attempt(keys);
    await throttle.succeeded(keys);
    assert.equal(await throttleRepository.find(metadata.db, 't:user:2'), undefined);
    assert.equal((await throttleRepository.find(metadata.db, 't:ip:2'))?.failures, 3);
  });

  it('one blocked key blocks the attempt, and the other keys are not counted', async () => {
    for (let i = 0; i < 6; i++) await throttle.attempt([account('t:user:3')]);
    assert.equal(await retryAfter(throttle.attempt([account('t:user:3'), ip('t:ip:3')])), 2);
    assert.equal(await throttleRepository.find(metadata.db, 't:ip:3'), undefined);
  });

  it('a key with no failure for a day starts over', async () => {
    for (let i = 0; i < 6; i++) await throttle.attempt([account('t:user:4')]);
    now += 24 * 3600_000 + 1;
    await throttle.attempt([account('t:user:4')]);
    assert.equal((await throttleRepository.find(metadata.db, 't:user:4'))?.failures, 1);
  });

  it('refund gives back exactly one attempt: the delay it caused goes, delays of failures counted meanwhile stay', async () => {
    const k = [account('t:user:6')];
    for (let i = 0; i < 6; i++) await throttle.attempt(k);
    now += 2_000; // the 2 s delay of the sixth failure has passed
    const right = await throttle.attemptRefundable(k);
    assert.equal((await throttleRepository.find(metadata.db, 't:user:6'))?.failures, 7);
    await throttle.refund(right);
    const back = await throttleRepository.find(metadata.db, 't:user:6');
    assert.equal(back?.failures, 6);
    assert.equal(await retryAfter(throttle.attempt(k)), null, 'a right answer leaves no delay behind');
    assert.equal(await retryAfter(throttle.attempt(k)), 4, 'the seventh failure still counts as the seventh');

    // A right answer sent alongside a wrong one: the wrong one's delay stands.
    now += 4_000;
    const alongside = await throttle.attemptRefundable(k); // the 8th count
    // Meanwhile another request (another process) counted a wrong answer past the same check: the 9th.
    const seen = (await throttleRepository.find(metadata.db, 't:user:6'))!;
    assert.ok(await throttleRepository.replace(metadata.db, seen, { ...seen, failures: 9, blocked_until: now + delayAfter(9, POLICIES.account) }));
    await throttle.refund(alongside);
    assert.equal((await throttleRepository.find(metadata.db, 't:user:6'))?.failures, 8);
    assert.equal(await retryAfter(throttle.attempt(k)), 8, 'the delay of an eighth failure (8 s)');
  });

  it('concurrent attempts are each counted once', async () => {
    await Promise.all(Array.from({ length: 5 }, () => throttle.attempt([account('t:user:5')])));
    assert.equal((await throttleRepository.find(metadata.db, 't:user:5'))?.failures, 5);
  });

  it('a free failure blocks nobody, not even an attempt whose clock read came a moment earlier', async () => {
    // Racing attempts read the clock, then the rows: one that read the clock just before another
    // counted a free failure must not take that failure's time for a block (it once answered 429, retry 1 s).
    const later = new ThrottleService({ db: metadata.db, clock: { now: () => now + 50 } });
    const k = [ip('t:ip:race')];
    assert.equal(await retryAfter(later.attempt(k)), null);
    assert.equal((await throttleRepository.find(metadata.db, 't:ip:race'))?.blocked_until, 0, 'no delay, no block');
    assert.equal(await retryAfter(throttle.attempt(k)), null, 'the earlier clock is not refused');
    assert.equal((await throttleRepository.find(metadata.db, 't:ip:race'))?.failures, 2);
  });
});
