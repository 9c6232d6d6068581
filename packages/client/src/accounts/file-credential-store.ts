/**
 * Credentials in a file only the user can read (0600) in the account's
 * state directory — never in the synced folder, never in accounts.json.
 * Rotated tokens are written atomically before they are used, so a crash
 * never leaves the client holding only a spent refresh token.
 * (The OS keyring, where one runs, is a later option: see the issue notes.)
 */
import { readFile, rm } from 'node:fs/promises';
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

export class FileCredentialStore {
  readonly path: string;
  constructor(stateDir: string) {
    this.path = join(stateDir, 'credentials.json');
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
}
