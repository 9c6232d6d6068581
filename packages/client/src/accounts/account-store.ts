/**
 * The accounts linked on this device. Each has its own state directory
 * (index, credentials, temporary files), never inside the synced folder:
 *
 *   <home>/accounts.json                  the list: name, server, folder, user, device name,
 *                                         where the credentials are (never the credentials)
 *   <home>/accounts/<name>/credentials.json   tokens and device key, mode 0600 — unless they
 *                                         are in the OS keyring (credential-stores.ts)
 *   <home>/accounts/<name>/index.sqlite       the sync index
 *
 * <home> is $COFFER_CLIENT_HOME, else $XDG_CONFIG_HOME/coffer, else
 * ~/.config/coffer. Accounts are independent: removing one never touches
 * another's folder or state.
 */
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

export interface Account {
  name: string;
  server: string;
  folder: string;
  username: string;
  deviceName: string;
  createdAt: string;
  lastSyncAt?: string;
  lastError?: string | null;
  /** Which store holds the credentials, chosen at sign-in; absent (accounts from before the keyring): the file. */
  credentialStore?: 'keyring' | 'file';
  /** With the keyring: the entry's account name (service "coffer"). */
  keyringUser?: string;
  /** A disconnect in progress: the next `coffer disconnect` continues from this step. */
  disconnecting?: { startedAt: string; step: 'finishing' | 'revoking' | 'clearing' };
}

export interface AccountsFile {
  accounts: Account[];
  defaultAccount?: string;
}

export function clientHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.COFFER_CLIENT_HOME) return env.COFFER_CLIENT_HOME;
  return join(env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'coffer');
}

/** Writes a file atomically (temp name, rename) with the given mode. */
export async function writeFileAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, data, { mode });
  await chmod(tmp, mode);
  await rename(tmp, path);
}

export class AccountStore {
  readonly home: string;
  constructor(home = clientHome()) {
    this.home = home;
  }

  stateDir(name: string): string {
    return join(this.home, 'accounts', name);
  }

  async read(): Promise<AccountsFile> {
    try {
      return JSON.parse(await readFile(join(this.home, 'accounts.json'), 'utf8')) as AccountsFile;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { accounts: [] };
      throw e;
    }
  }

  private async write(f: AccountsFile): Promise<void> {
    await mkdir(this.home, { recursive: true, mode: 0o700 });
    await writeFileAtomic(join(this.home, 'accounts.json'), JSON.stringify(f, null, 2) + '\n', 0o600);
  }

  async list(): Promise<Account[]> {
    return (await this.read()).accounts;
  }

  /** The account named, or the only/default one when no name is given; throws a clear error otherwise. */
  async pick(name?: string): Promise<Account> {
    const f = await this.read();
    if (name) {
      const a = f.accounts.find((x) => x.name === name);
      if (!a) throw new Error(`No account named "${name}" on this device; see \`coffer accounts\`.`);
      return a;
    }
    if (f.accounts.length === 0) throw new Error('No account is linked on this device yet: run `coffer login <server> --folder <folder>`.');
    const d = f.accounts.find((x) => x.name === f.defaultAccount) ?? (f.accounts.length === 1 ? f.accounts[0] : undefined);
    if (!d) throw new Error(`Several accounts are linked (${f.accounts.map((a) => a.name).join(', ')}): choose one with --account.`);
    return d;
  }

  async add(a: Account): Promise<void> {
    const f = await this.read();
    if (f.accounts.some((x) => x.name === a.name)) throw new Error(`An account named "${a.name}" is already linked; choose another name with --name.`);
    const clash = f.accounts.find((x) => x.folder === a.folder || a.folder.startsWith(x.folder + '/') || x.folder.startsWith(a.folder + '/'));
    if (clash) throw new Error(`The folder ${a.folder} overlaps the folder of account "${clash.name}" (${clash.folder}); each account needs a folder of its own.`);
    f.accounts.push(a);
    f.defaultAccount ??= a.name;
    await mkdir(this.stateDir(a.name), { recursive: true, mode: 0o700 });
    await this.write(f);
  }

  async update(name: string, patch: Partial<Account>): Promise<void> {
    const f = await this.read();
    f.accounts = f.accounts.map((a) => (a.name === name ? { ...a, ...patch } : a));
    await this.write(f);
  }

  /** Forgets an account and deletes its state directory (credentials, index); the synced folder is not touched. */
  async remove(name: string): Promise<void> {
    const f = await this.read();
    f.accounts = f.accounts.filter((a) => a.name !== name);
    if (f.defaultAccount === name) f.defaultAccount = f.accounts[0]?.name;
    await this.write(f);
    await rm(this.stateDir(name), { recursive: true, force: true });
  }
}
