/**
 * Credentials in a file only the user can read (0600) in the account's
 * state directory — never in the synced folder, never in accounts.json.
 * Rotated tokens are written atomically before they are used, so a crash
 * never leaves the client holding only a spent refresh token.
 * Several `coffer` processes may share one account (`sync --watch` and a
 * `status`): token renewal runs under an exclusive lock file, because a
 * refresh token sent twice ends the session. A lock left by a process that
 * died is taken over once it is older than LOCK_STALE_MS.
 * Where an OS keyring works, sign-in stores credentials there instead
 * (keyring-credential-store.ts, chosen in credential-stores.ts); that store
 * takes the same lock file.
 */
const LOCK_STALE_MS = 60_000;
const LOCK_WAIT_MS = 30_000;
import { open, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from './account-store.ts';

export interface StoredCredentials {
  accessToken: string;
  refreshToken: string;
  accessExpiresAt: number;
  deviceKey?: string;
  sessionId?: string;
  deviceId?: string;
}

/** The lock file that serializes token renewal among the processes of one account, whichever store holds its credentials. */
export function credentialsLockPath(stateDir: string): string {
  return join(stateDir, 'credentials.json.lock');
}

export class FileCredentialStore {
  readonly kind = 'file' as const;
  readonly path: string;
  private readonly lockPath: string;
  constructor(stateDir: string) {
    this.path = join(stateDir, 'credentials.json');
    this.lockPath = credentialsLockPath(stateDir);
  }
  /** Where the credentials are, for people. */
  get location(): string {
    return this.path;
  }
  async load(): Promise<StoredCredentials | null> {
    try {
      return JSON.parse(await readFile(this.path, 'utf8')) as StoredCredentials;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }
  async save(c: StoredCredentials): Promise<void> {
    await writeFileAtomic(this.path, JSON.stringify(c) + '\n', 0o600);
  }
  async clear(): Promise<void> {
    await rm(this.path, { force: true });
  }
  withLock<T>(fn: () => Promise<T>): Promise<T> {
    return withLockFile(this.lockPath, fn);
  }
}

/** Runs `fn` while holding `lock` (created exclusively, 0600); takes over a lock older than LOCK_STALE_MS. */
export async function withLockFile<T>(lock: string, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const fh = await open(lock, 'wx', 0o600);
      await fh.writeFile(String(process.pid));
      await fh.close();
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const st = await stat(lock).catch(() => null);
      if (st && Date.now() - st.mtimeMs > LOCK_STALE_MS) await rm(lock, { force: true });
      else if (Date.now() > deadline) throw new Error(`another coffer process holds ${lock}; try again`);
      else await new Promise((r) => setTimeout(r, 25));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lock, { force: true });
  }
}
