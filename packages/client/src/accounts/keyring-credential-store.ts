/**
 * Credentials in the OS keyring: one entry per account, service "coffer",
 * the entry's account name recorded in accounts.json at sign-in (the
 * account's state directory, so two Coffer homes on one machine never share
 * an entry), the secret being the JSON the file store would hold.
 *
 * Same contract as FileCredentialStore: a save resolves once the keyring
 * holds the new pair, and token renewal runs under the same lock file in
 * the account's state directory, so two processes of one account never
 * spend one refresh token twice.
 *
 * When the keyring cannot be used (locked, no desktop session, the daemon
 * gone) every operation fails with KEYRING_UNAVAILABLE and says what to do;
 * it never answers "no credentials" instead, and never falls back to a
 * file: the stored pair stays where it is until the keyring is back.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ApiError } from '../remote/api-error.ts';
import type { Credentials } from '../remote/credentials.ts';
import { credentialsLockPath, withLockFile } from './file-credential-store.ts';
import { KEYRING_SERVICE, KeyringFailure, keyringCall, type KeyringCallOptions, type KeyringRequest } from './keyring.ts';

export interface KeyringCredentialStoreOptions extends KeyringCallOptions {
  /** The account's state directory: where the lock file lives (and a stale credentials.json is removed by `clear`). */
  stateDir: string;
  /** The entry's account name in the keyring. */
  user: string;
  service?: string;
  /** For messages: the account's name on this device. */
  accountName?: string;
  /** For messages: the command that signs this account in again. */
  signInAgain?: string;
}

export class KeyringCredentialStore {
  readonly kind = 'keyring' as const;
  readonly service: string;
  readonly user: string;
  private readonly opts: KeyringCredentialStoreOptions;

  constructor(opts: KeyringCredentialStoreOptions) {
    this.opts = opts;
    this.service = opts.service ?? KEYRING_SERVICE;
    this.user = opts.user;
  }

  /** Where the credentials are, for people. */
  get location(): string {
    return `OS keyring, service "${this.service}", account "${this.user}"`;
  }

  async load(): Promise<Credentials | null> {
    const value = (await this.call({ op: 'get', service: this.service, user: this.user })).value;
    if (value === null || value === undefined) return null;
    try {
      return JSON.parse(value) as Credentials;
    } catch {
      throw this.unavailable('its entry does not hold Coffer credentials');
    }
  }

  async save(c: Credentials): Promise<void> {
    await this.call({ op: 'set', service: this.service, user: this.user, secret: JSON.stringify(c) });
  }

  /** Deletes the keyring entry, and a credentials file left from an earlier sign-in, if any. */
  async clear(): Promise<void> {
    await this.call({ op: 'delete', service: this.service, user: this.user });
    await rm(join(this.opts.stateDir, 'credentials.json'), { force: true });
  }

  withLock<T>(fn: () => Promise<T>): Promise<T> {
    return withLockFile(credentialsLockPath(this.opts.stateDir), fn);
  }

  private async call(req: KeyringRequest) {
    try {
      return await keyringCall(req, this.opts);
    } catch (e) {
      if (e instanceof KeyringFailure) throw this.unavailable(e.reason, e);
      throw e;
    }
  }

  private unavailable(reason: string, cause?: unknown): ApiError {
    const who = this.opts.accountName ? `The credentials of the account "${this.opts.accountName}"` : 'These credentials';
    const again = this.opts.signInAgain ? `\`${this.opts.signInAgain}\`` : '`coffer login`';
    return new ApiError({
      code: 'KEYRING_UNAVAILABLE', status: 0, cause,
      message: `${who} are kept in the OS keyring, which cannot be used now: ${reason}. `
        + `Unlock the keyring (or run coffer in the desktop session where it is unlocked) and try again, `
        + `or sign in again with ${again} (without a keyring the new credentials go to a file readable only by you). (KEYRING_UNAVAILABLE)`,
      details: { store: 'keyring', service: this.service, user: this.user, reason },
    });
  }
}
