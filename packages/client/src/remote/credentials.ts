/**
 * What a signed-in sync client holds, and where it keeps it. The server
 * rotates the refresh token on every use and treats a second use as theft
 * (the whole session is revoked), so the store must have saved a new pair
 * before anything uses it: a crash then leaves the new pair on disk, never
 * only the spent one. `accessExpiresAt` is the server's clock, in ms.
 *
 * Several clients may share one store (two processes of the same account:
 * `coffer sync --watch` and `coffer status`). A store that can, implements
 * `withLock` — mutual exclusion across everything sharing it — and the API
 * client renews tokens only inside it, re-reading the store first, so two
 * sharers never spend the same refresh token.
 */

export interface Credentials {
  accessToken: string;
  refreshToken: string;
  /** When the access token stops working, ms since the epoch (server clock). */
  accessExpiresAt: number;
  /** Sent at the next sign-in so this device keeps its entry in the devices list. */
  deviceKey?: string;
  sessionId?: string;
  deviceId?: string;
}

export interface CredentialStore {
  load(): Promise<Credentials | null>;
  /** Must be durable when it resolves. */
  save(c: Credentials): Promise<void>;
  clear(): Promise<void>;
  /** Runs `fn` while no other sharer of this store runs one (optional: without it, only one client may use a store at a time). */
  withLock?<T>(fn: () => Promise<T>): Promise<T>;
}

/** For tests and short-lived tools: nothing survives the process. */
export class MemoryCredentialStore implements CredentialStore {
  private value: Credentials | null;
  /** Every pair saved, oldest first (tests check rotation with it). */
  readonly history: Credentials[] = [];
  constructor(initial: Credentials | null = null) {
    this.value = initial ? { ...initial } : null;
  }
  async load(): Promise<Credentials | null> {
    return this.value ? { ...this.value } : null;
  }
  async save(c: Credentials): Promise<void> {
    this.value = { ...c };
    this.history.push({ ...c });
  }
  async clear(): Promise<void> {
    this.value = null;
  }
  private tail: Promise<unknown> = Promise.resolve();
  withLock<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => {});
    return run;
  }
}
