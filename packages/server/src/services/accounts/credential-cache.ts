/**
 * Credentials already checked, kept in memory while nothing they depend on
 * has changed: a request then authenticates without a database read. The
 * database stays the only truth: the cache is emptied whenever the
 * credential epoch moves (a write to sessions, credentials, devices or
 * users on this connection, or any commit by another process, see
 * db/credential-epoch.ts), so a revocation is refused by the very next
 * request, as without it. Expiry and idle time are still judged by the
 * caller against the clock on every request.
 *
 * A session's activity (last_seen_at, written once a minute) does not move
 * the epoch: the session service reports it with `touched`, which brings the
 * kept rows of that session up to date instead of emptying the cache.
 *
 * Only where an epoch exists (SQLite, one server process); on PostgreSQL
 * every request reads the database.
 */
import type { AuthenticatedCredential } from '../../repositories/session.repository.ts';

/** Enough for every device of a busy server; past it, the cache starts over. */
const MAX_ENTRIES = 10_000;

export class CredentialCache {
  readonly #epoch: () => number;
  #seen = -1;
  readonly #rows = new Map<string, AuthenticatedCredential>();
  /** Moves with every touched(): a row read meanwhile may predate that activity. */
  #touches = 0;
  /** Hashes kept per session id (a session has several credentials: access, refresh, app password). */
  readonly #bySession = new Map<string, Set<string>>();

  constructor(epoch: () => number) {
    this.#epoch = epoch;
  }

  /** The credential with this hash: from memory while the epoch holds, else from `load`. */
  async find(hash: string, load: () => Promise<AuthenticatedCredential | undefined>): Promise<AuthenticatedCredential | undefined> {
    const epoch = this.#epoch();
    if (epoch !== this.#seen) {
      this.#clear();
      this.#seen = epoch;
    }
    const kept = this.#rows.get(hash);
    if (kept) return kept;
    const touches = this.#touches;
    const row = await load();
    // Kept only if nothing it depends on was written while it was read: otherwise it may already be stale.
    if (row && this.#epoch() === epoch && this.#touches === touches) {
      if (this.#rows.size >= MAX_ENTRIES) this.#clear();
      this.#rows.set(hash, row);
      const hashes = this.#bySession.get(row.session.id);
      if (hashes) hashes.add(hash);
      else this.#bySession.set(row.session.id, new Set([hash]));
    }
    return row;
  }

  /** The session's activity was just written (sessionRepository.touch): its kept rows say so too. */
  touched(sessionId: string, lastSeenAt: number, ip: string | null): void {
    this.#touches++;
    for (const hash of this.#bySession.get(sessionId) ?? []) {
      const row = this.#rows.get(hash);
      if (row) this.#rows.set(hash, { ...row, session: { ...row.session, last_seen_at: lastSeenAt, ...(ip ? { ip } : {}) } });
    }
  }

  /** The session's activity may have been written in part (a touch failed): its rows are read again next time. */
  forget(sessionId: string): void {
    this.#touches++;
    for (const hash of this.#bySession.get(sessionId) ?? []) this.#rows.delete(hash);
    this.#bySession.delete(sessionId);
  }

  #clear(): void {
    this.#rows.clear();
    this.#bySession.clear();
  }
}
