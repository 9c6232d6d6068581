/**
 * Where an account's credentials live: the OS keyring when one works here,
 * else a file readable only by the user (0600) in the account's state
 * directory. Never in the synced folder, never in accounts.json.
 *
 * Sign-in chooses, once: it probes the keyring (write, read back, delete a
 * probe entry; bounded by a timeout, so a machine without a desktop session
 * answers "no" in well under a second instead of hanging) and records the
 * choice in the account (`credentialStore`). COFFER_CREDENTIAL_STORE=
 * file|keyring|auto (default auto) overrides; `keyring` where none works is
 * an error. Later commands open the store the account names, whatever the
 * environment says: a keyring that is unavailable then is an error that
 * says what to do, never a silent switch to another store.
 */
import { rm } from 'node:fs/promises';
import { ApiError } from '../remote/api-error.ts';
import type { CredentialStore, Credentials } from '../remote/credentials.ts';
import type { Account, AccountStore } from './account-store.ts';
import { FileCredentialStore } from './file-credential-store.ts';
import { KeyringCredentialStore } from './keyring-credential-store.ts';
import { KEYRING_SERVICE, KEYRING_TIMEOUT_MS, PROBE_TIMEOUT_MS, keyringCall, probeKeyring, type KeyringCallOptions } from './keyring.ts';

export type CredentialStoreKind = 'keyring' | 'file';

/** A credential store of one account on this device. */
export interface AccountCredentialStore extends CredentialStore {
  readonly kind: CredentialStoreKind;
  /** Where the credentials are, for people: a path, or the keyring entry. */
  readonly location: string;
  withLock<T>(fn: () => Promise<T>): Promise<T>;
}

export interface CredentialStoreChoice {
  kind: CredentialStoreKind;
  /** COFFER_CREDENTIAL_STORE=keyring: failing to use the keyring is an error, not a fallback. */
  forced: boolean;
  /** Why the keyring is not used, when auto fell back to the file. */
  fallbackReason?: string;
}

export type CredentialStoreOptions = KeyringCallOptions;

/** The keyring entry's account name for an account: its state directory (unique per Coffer home and account). */
export function keyringUserFor(store: AccountStore, account: Account): string {
  return account.keyringUser ?? store.stateDir(account.name);
}

/** The store the account's configuration names (accounts from before the keyring: the file). */
export function credentialStoreOf(store: AccountStore, account: Account, opts: CredentialStoreOptions = {}): AccountCredentialStore {
  const stateDir = store.stateDir(account.name);
  if ((account.credentialStore ?? 'file') === 'file') return new FileCredentialStore(stateDir);
  return new KeyringCredentialStore({
    ...opts, stateDir, user: keyringUserFor(store, account), accountName: account.name,
    signInAgain: `coffer login ${account.server} --folder ${account.folder} --name ${account.name}`,
  });
}

/** Where an account's credentials are, for `coffer accounts`. */
export function describeCredentials(store: AccountStore, account: Account): { credentialStore: CredentialStoreKind; credentialLocation: string } {
  const s = credentialStoreOf(store, account);
  return { credentialStore: s.kind, credentialLocation: s.location };
}

/** Sign-in's choice (see the top of this file). Throws KEYRING_UNAVAILABLE for a forced keyring that does not work. */
export async function chooseCredentialStore(opts: CredentialStoreOptions = {}): Promise<CredentialStoreChoice> {
  const env = opts.env ?? process.env;
  const mode = (env.COFFER_CREDENTIAL_STORE || 'auto').trim().toLowerCase();
  if (mode !== 'auto' && mode !== 'file' && mode !== 'keyring') {
    throw new ApiError({ code: 'BAD_CREDENTIAL_STORE', status: 0, message: `COFFER_CREDENTIAL_STORE is "${env.COFFER_CREDENTIAL_STORE}": use file, keyring or auto. (BAD_CREDENTIAL_STORE)` });
  }
  if (mode === 'file') return { kind: 'file', forced: true };
  // Demanded: time enough to answer an unlock prompt. Otherwise a short wait, then the file.
  const probe = await probeKeyring({ ...opts, timeoutMs: opts.timeoutMs ?? (mode === 'keyring' ? KEYRING_TIMEOUT_MS : PROBE_TIMEOUT_MS) });
  if (probe.ok) return { kind: 'keyring', forced: mode === 'keyring' };
  if (mode === 'keyring') throw forcedKeyringError(probe.reason);
  return { kind: 'file', forced: false, fallbackReason: probe.reason };
}

/**
 * Saves a sign-in's credentials in the chosen store and records the store in the account. A keyring
 * that fails now (after a good probe) falls back to the file unless it was forced. A copy in the other
 * store (an account signing in again) is removed, best effort. Answers the store used, and a note for
 * the user when the keyring was wanted but not used.
 */
export async function saveSignIn(store: AccountStore, account: Account, choice: CredentialStoreChoice, c: Credentials, opts: CredentialStoreOptions = {}): Promise<{ credentials: AccountCredentialStore; note?: string }> {
  let fallbackReason = choice.fallbackReason;
  let kind = choice.kind;
  const user = keyringUserFor(store, account);
  if (kind === 'keyring') {
    const keyring = credentialStoreOf(store, { ...account, credentialStore: 'keyring', keyringUser: user }, opts);
    try {
      await keyring.save(c);
    } catch (e) {
      const reason = (e as ApiError).details?.reason as string | undefined ?? (e as Error).message;
      if (choice.forced) throw forcedKeyringError(reason);
      fallbackReason = reason;
      kind = 'file';
    }
  }
  if (kind === 'file') await new FileCredentialStore(store.stateDir(account.name)).save(c);
  const patch: Partial<Account> = kind === 'keyring' ? { credentialStore: 'keyring', keyringUser: user } : { credentialStore: 'file', keyringUser: undefined };
  await store.update(account.name, patch);
  const updated = { ...account, ...patch };
  const credentials = credentialStoreOf(store, updated, opts);
  // The other store's copy, from an earlier sign-in of this account: gone, so only one place holds tokens.
  if (kind === 'keyring') await rm(new FileCredentialStore(store.stateDir(account.name)).path, { force: true });
  else if (account.credentialStore === 'keyring' && choice.kind === 'file') await keyringCall({ op: 'delete', service: KEYRING_SERVICE, user }, { ...opts, timeoutMs: PROBE_TIMEOUT_MS }).catch(() => {});
  const note = fallbackReason ? `the OS keyring cannot be used here (${fallbackReason}); the credentials are kept in ${credentials.location}, readable only by you` : undefined;
  return note ? { credentials, note } : { credentials };
}

function forcedKeyringError(reason: string): ApiError {
  return new ApiError({
    code: 'KEYRING_UNAVAILABLE', status: 0, details: { reason },
    message: `COFFER_CREDENTIAL_STORE=keyring, but the OS keyring cannot be used here: ${reason}. `
      + 'Unlock it (or sign in from the desktop session where it runs), or set COFFER_CREDENTIAL_STORE=auto or file to keep the credentials in a file readable only by you. (KEYRING_UNAVAILABLE)',
  });
}
