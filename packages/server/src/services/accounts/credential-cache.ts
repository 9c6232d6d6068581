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

  constructor(epoch: () => number) {
    this.#epoch = epoch;
  }

  /** The credential with this hash: from memory while the epoch holds, else from `load`. */
  async find(hash: string, load: () => Promise<AuthenticatedCredential | undefined>): Promise<AuthenticatedCredential | undefined> {
    const epoch = this.#epoch();
    if (epoch !== this.#seen) {
      this.#rows.clear();
      this.#seen = epoch;
    }
    const kept = this.#rows.get(hash);
    if (kept) return kept;
    const row = await load();
    // Kept only if nothing it depends on was written while it was read: otherwise it may already be stale.
    if (row && this.#epoch() === epoch) {
      if (this.#rows.size >= MAX_ENTRIES) this.#rows.clear();
      this.#rows.set(hash, row);
    }
    return row;
  }
}
