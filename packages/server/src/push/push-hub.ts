/**
 * In-process push subscribers. A subscriber is one open push channel (an SSE
 * stream today, a WebSocket later) of one drive, authenticated with one
 * credential. The hub is told two things, by this process or — through a bus
 * (see pg-notify.bus.ts) — by any other process on the same database:
 *   - a drive's change feed advanced to `seq`: every subscriber of that drive
 *     is told, once per new position (duplicates and older positions are
 *     dropped, so a change heard both locally and over the bus counts once);
 *   - a credential was revoked: every subscriber authenticated with it is
 *     closed at once. Revocations are remembered for a while, so a channel
 *     whose credential was revoked between authentication and subscription
 *     is closed as it subscribes.
 */
import type { Revocation } from '../services/context.ts';

export interface PushSubscriber {
  /** The drive's feed advanced; `seq` is its new last position. */
  changed(seq: number): void;
  /** The channel must end now (credential revoked, server shutting down). */
  close(reason: 'revoked' | 'shutdown'): void;
}

export interface Subscription {
  /** Stops delivery; idempotent. */
  unsubscribe(): void;
}


interface Entry {
  ownerId: string;
  credentialKey: string | undefined;
  sub: PushSubscriber;
  last: number;
}

/** How long a revoked credential key is remembered for subscribers that arrive late. */
const REMEMBER_REVOCATION_MS = 5 * 60_000;

export class PushHub {
  private readonly byOwner = new Map<string, Set<Entry>>();
  /** credential key → when it was revoked; insertion order is time order. */
  private readonly recentlyRevoked = new Map<string, number>();
  private closed = false;

  /** Open channels, for metrics and tests. */
  get size(): number {
    let n = 0;
    for (const set of this.byOwner.values()) n += set.size;
    return n;
  }

  /**
   * Registers a channel of `ownerId`'s drive. `since` is the position the
   * channel already reported (changes at or below it are not delivered).
   * Returns null when the channel must not open: its credential was revoked
   * meanwhile (then `sub.close('revoked')` was called) or the hub is closed.
   */
  subscribe(ownerId: string, credentialKey: string | undefined, since: number, sub: PushSubscriber): Subscription | null {
    if (this.closed) {
      sub.close('shutdown');
      return null;
    }
    if (credentialKey !== undefined && this.isRecentlyRevoked(credentialKey)) {
      sub.close('revoked');
      return null;
    }
    const entry: Entry = { ownerId, credentialKey, sub, last: since };
    let set = this.byOwner.get(ownerId);
    if (!set) this.byOwner.set(ownerId, (set = new Set()));
    set.add(entry);
    return { unsubscribe: () => this.remove(entry) };
  }

  /** A drive's feed reached `seq` (called after the commit, from this process or the bus). */
  changed(ownerId: string, seq: number): void {
    const set = this.byOwner.get(ownerId);
    if (!set) return;
    for (const e of [...set]) {
      if (seq <= e.last) continue;
      e.last = seq;
      try {
        e.sub.changed(seq);
      } catch {
        this.remove(e);
      }
    }
  }

  /** A credential (or every credential of a user) was revoked: its channels close now. */
  revoked(r: Revocation): void {
    const now = Date.now();
    this.forget(now);
    if (r.credentialKey) {
      this.recentlyRevoked.delete(r.credentialKey);
      this.recentlyRevoked.set(r.credentialKey, now);
    }
    for (const set of [...this.byOwner.values()]) {
      for (const e of [...set]) {
        const hit = (r.credentialKey !== undefined && e.credentialKey === r.credentialKey) || (r.userId !== undefined && e.ownerId === r.userId);
        if (hit) this.end(e, 'revoked');
      }
    }
  }

  /** Drives with an open channel (to re-read their positions after a missed notification). */
  owners(): string[] {
    return [...this.byOwner.keys()];
  }

  /** Credential keys of open channels (to re-check them after a missed revocation). */
  credentialKeys(): string[] {
    const keys = new Set<string>();
    for (const set of this.byOwner.values()) for (const e of set) if (e.credentialKey !== undefined) keys.add(e.credentialKey);
    return [...keys];
  }

  /** Ends every channel and refuses new ones (server shutdown). */
  closeAll(): void {
    this.closed = true;
    for (const set of [...this.byOwner.values()]) for (const e of [...set]) this.end(e, 'shutdown');
  }

  private end(e: Entry, reason: 'revoked' | 'shutdown'): void {
    this.remove(e);
    try {
      e.sub.close(reason);
    } catch { /* already gone */ }
  }

  private remove(e: Entry): void {
    const set = this.byOwner.get(e.ownerId);
    if (!set) return;
    set.delete(e);
    if (set.size === 0) this.byOwner.delete(e.ownerId);
  }

  private isRecentlyRevoked(credentialKey: string): boolean {
    this.forget(Date.now());
    return this.recentlyRevoked.has(credentialKey);
  }

  private forget(now: number): void {
    for (const [k, at] of this.recentlyRevoked) {
      if (now - at > REMEMBER_REVOCATION_MS) this.recentlyRevoked.delete(k);
      else break;
    }
  }
}
