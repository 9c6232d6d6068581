/**
 * Throttles guessing: failed sign-ins, second-factor codes and reset
 * requests, per account and per IP, with growing delays. The counters live
 * in the database, so every server process sharing it enforces the same
 * limits. An attempt is counted *before* the password is checked (and
 * refunded on success), so parallel guesses cannot all slip past the check.
 *
 * A blocked account refuses sign-in, not password reset: a legitimate user
 * locked out by someone guessing can still reset (and a reset clears it).
 */
import { CofferError } from '@coffer/protocol';
import { throttleRepository, type ThrottleRow } from '../../repositories/throttle.repository.ts';
import type { ServiceDeps } from '../context.ts';

export interface ThrottlePolicy {
  /** Failures allowed before any delay. */
  free: number;
  /** Delay after the first failure past `free`; doubles with each further failure. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** A key with no failure for this long starts over. */
  forgetAfterMs: number;
}

export const POLICIES = {
  account: { free: 5, baseDelayMs: 2_000, maxDelayMs: 15 * 60_000, forgetAfterMs: 24 * 3600_000 },
  ip: { free: 20, baseDelayMs: 1_000, maxDelayMs: 15 * 60_000, forgetAfterMs: 24 * 3600_000 },
} as const satisfies Record<string, ThrottlePolicy>;

export interface ThrottleKey {
  key: string;
  policy: ThrottlePolicy;
}

/** What one attempt counted against one key: the row before it, and the row it wrote. */
export interface ThrottleReceipt {
  key: ThrottleKey;
  before: ThrottleRow | undefined;
  written: ThrottleRow;
}

export function delayAfter(failures: number, p: ThrottlePolicy): number {
  if (failures <= p.free) return 0;
  return Math.min(p.maxDelayMs, p.baseDelayMs * 2 ** Math.min(30, failures - p.free - 1));
}

export class ThrottleService {
  private readonly deps: Pick<ServiceDeps, 'db' | 'clock'>;
  constructor(deps: Pick<ServiceDeps, 'db' | 'clock'>) {
    this.deps = deps;
  }

  /**
   * Counts an attempt against every key, or throws TOO_MANY_ATTEMPTS (with
   * `retryAfterSeconds`) if one of them is blocked; a blocked attempt is not
   * counted, so waiting is enough to get through.
   */
  async attempt(keys: ThrottleKey[]): Promise<void> {
    await this.attemptRefundable(keys);
  }

  /** As attempt(), and returns what it counted, so that refund() can give back exactly that. */
  async attemptRefundable(keys: ThrottleKey[]): Promise<ThrottleReceipt[]> {
    const now = this.deps.clock.now();
    const rows = await Promise.all(keys.map((k) => throttleRepository.find(this.deps.db, k.key)));
    const blockedUntil = Math.max(0, ...rows.map((r) => (r && r.blocked_until > now ? r.blocked_until : 0)));
    if (blockedUntil > 0) throw tooMany(blockedUntil - now);
    const receipts: ThrottleReceipt[] = [];
    for (const k of keys) receipts.push(await this.count(k, now));
    return receipts;
  }

  /** The attempt succeeded: an account starts over; an IP gets this attempt back. */
  async succeeded(keys: ThrottleKey[]): Promise<void> {
    for (const k of keys) {
      if (k.policy === POLICIES.ip) await this.refundOne(k);
      else await throttleRepository.delete(this.deps.db, k.key);
    }
  }

  /**
   * The attempt was no failure after all (a code that exists): each key
   * loses the count and returns to the delay it had before. If other
   * attempts were counted since, their delays stand (recomputed without
   * this one), so a right answer sent alongside wrong ones lifts nothing.
   */
  async refund(receipts: ThrottleReceipt[]): Promise<void> {
    for (const r of receipts) {
      for (let tries = 0; tries < 20; tries++) {
        const seen = await throttleRepository.find(this.deps.db, r.key.key);
        if (!seen) break;
        const failures = Math.max(0, seen.failures - 1);
        const untouched = seen.failures === r.written.failures && seen.last_failure_at === r.written.last_failure_at;
        const next: ThrottleRow = untouched
          ? { key: seen.key, failures, last_failure_at: r.before?.last_failure_at ?? seen.last_failure_at, blocked_until: r.before?.blocked_until ?? 0 }
          : { key: seen.key, failures, last_failure_at: seen.last_failure_at, blocked_until: failures <= r.key.policy.free ? 0 : seen.last_failure_at + delayAfter(failures, r.key.policy) };
        if (await throttleRepository.replace(this.deps.db, seen, next)) break;
      }
    }
  }

  async clear(key: string): Promise<void> {
    await throttleRepository.delete(this.deps.db, key);
  }

  /** Compare-and-set loop: concurrent attempts from several processes each count once. */
  private async count(k: ThrottleKey, now: number): Promise<ThrottleReceipt> {
    for (let tries = 0; tries < CAS_TRIES; tries++) {
      if (tries > 0) await contentionPause(tries);
      const seen = await throttleRepository.find(this.deps.db, k.key);
      const failures = seen && now - seen.last_failure_at <= k.policy.forgetAfterMs ? seen.failures + 1 : 1;
      const delay = delayAfter(failures, k.policy);
      // No delay is no block (0), not "blocked until now": a racer that read the clock a moment
      // earlier would otherwise see this free failure as a block and be refused.
      const next: ThrottleRow = { key: k.key, failures, last_failure_at: now, blocked_until: delay > 0 ? now + delay : 0 };
      if (seen ? await throttleRepository.replace(this.deps.db, seen, next) : await throttleRepository.insertFirst(this.deps.db, next)) return { key: k, before: seen, written: next };
    }
    throw tooMany(1000); // heavy contention on one key is itself a sign of guessing
  }

  private async refundOne(k: ThrottleKey): Promise<void> {
    for (let tries = 0; tries < 20; tries++) {
      const seen = await throttleRepository.find(this.deps.db, k.key);
      if (!seen) return;
      const failures = Math.max(0, seen.failures - 1);
      const next = { ...seen, failures, blocked_until: failures <= k.policy.free ? 0 : seen.blocked_until };
      if (await throttleRepository.replace(this.deps.db, seen, next)) return;
    }
  }
}

/** Each round of a compare-and-set race has a winner, so N racers need at most N rounds; a short random pause spreads them. */
const CAS_TRIES = 60;
function contentionPause(tries: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.random() * Math.min(20, 2 * tries)));
}

function tooMany(waitMs: number): CofferError {
  return new CofferError('TOO_MANY_ATTEMPTS', undefined, { retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) });
}
