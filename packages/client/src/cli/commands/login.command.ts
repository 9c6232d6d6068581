/**
 * `coffer login <server> --folder <dir>`: signs this device in to an
 * account (password, then a 2FA code when the account has one) and links a
 * local folder to the account's drive. Credentials go to the OS keyring
 * when one works here, else to a file readable only by the user (0600) in
 * the account's state directory — never into the folder
 * (accounts/credential-stores.ts; COFFER_CREDENTIAL_STORE overrides).
 */
import { Command } from 'commander';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { hostname, platform } from 'node:os';
import { join, resolve } from 'node:path';
import { AccountStore, type Account } from '../../accounts/account-store.ts';
import { chooseCredentialStore, saveSignIn } from '../../accounts/credential-stores.ts';
import { completeLogin2fa, login, pollDeviceLogin, startDeviceLogin, type SignedIn } from '../../remote/auth.ts';
import { ApiClient } from '../../remote/api-client.ts';
import { MemoryCredentialStore } from '../../remote/credentials.ts';
import { ROOT_MARKER } from '../../scanner/ignore.ts';
import { ask } from '../prompt.ts';
import { output } from '../output.ts';

interface LoginFlags { folder: string; name?: string; username?: string; password?: string | boolean; code?: string; deviceName?: string; json?: boolean }

export function loginCommand(): Command {
  return new Command('login').description('Sign this device in to an account and link a folder to its drive')
    .argument('<server>', 'the server address, e.g. https://drive.example.org')
    .requiredOption('--folder <dir>', 'the local folder to keep in sync (created if missing)')
    .option('--name <name>', 'a name for this account on this device (default: user@host)')
    .option('--password [password]', 'sign in with username and password here instead of approving in a browser (prefer the prompt or COFFER_PASSWORD: flags land in shell history)')
    .option('--username <user>', 'username or e-mail, with --password (asked when missing)')
    .option('--code <code>', 'a two-factor code or recovery code (asked when needed)')
    .option('--device-name <name>', 'how this device appears in your devices list', hostname())
    .option('--json', 'machine-readable output')
    .action(async (serverArg: string, flags: LoginFlags) => {
      const out = output(!!flags.json);
      const server = normalizeServer(serverArg);
      const folder = resolve(flags.folder);
      const store = new AccountStore();
      const relink = await linkedAccount(store, folder, server);
      const where = await chooseCredentialStore(); // before signing in: a keyring demanded but missing fails first
      const withPassword = flags.password !== undefined || process.env.COFFER_PASSWORD !== undefined;
      const result = withPassword ? await passwordSignIn(server, flags) : await browserSignIn(server, flags, (l) => process.stderr.write(`${l}\n`));
      if (relink) {
        // Signed out remotely earlier: the same account signs in again and keeps its index, so unsynced changes still sync.
        if (relink.username !== result.user.username) throw new Error(`${folder} belongs to ${relink.username}'s account "${relink.name}", not ${result.user.username}'s.`);
        const saved = await saveSignIn(store, relink, where, result.credentials);
        await store.update(relink.name, { lastError: null });
        out.result({ account: relink.name, folder, server, user: result.user.username, relinked: true, ...stored(saved) }, () => {
          if (saved.note) out.line(`note: ${saved.note}`);
          out.line(`signed in again as ${result.user.username}; ${folder} keeps syncing with the account "${relink.name}" (run \`coffer sync\`)`);
        });
        return;
      }
      const name = flags.name ?? `${result.user.username}@${new URL(server).host.replace(':', '-')}`;
      if (!/^[\w.@-]{1,100}$/.test(name)) throw new Error('An account name is letters, digits, ".", "_", "-" or "@".');
      const account: Account = { name, server, folder, username: result.user.username, deviceName: flags.deviceName ?? hostname(), createdAt: new Date().toISOString(), credentialStore: where.kind };
      await store.add(account);
      const saved = await saveSignIn(store, account, where, result.credentials).catch(async (e: unknown) => {
        // Nowhere to keep the credentials: no half-linked account here, no dangling session there.
        await store.remove(name).catch(() => {});
        await new ApiClient({ baseUrl: server, credentials: new MemoryCredentialStore(result.credentials) }).logout().catch(() => {});
        throw e;
      });
      const credentials = saved.credentials;
      const drive = await new ApiClient({ baseUrl: server, credentials }).drive();
      await mkdir(folder, { recursive: true });
      await writeFile(join(folder, ROOT_MARKER), JSON.stringify({ account: name, server, instanceId: drive.instanceId, rootId: drive.rootId }) + '\n');
      out.result({ account: name, folder, server, user: result.user.username, ...stored(saved) }, () => {
        if (saved.note) out.line(`note: ${saved.note}`);
        out.line(`signed in as ${result.user.username}; ${folder} is linked to the account "${name}"`);
        out.line('run `coffer sync` (or `coffer sync --watch`) to sync it');
      });
    });
}

/** Where the credentials went, for the command's result. */
function stored(saved: Awaited<ReturnType<typeof saveSignIn>>): { credentialStore: string; credentialLocation: string; credentialNote?: string } {
  return { credentialStore: saved.credentials.kind, credentialLocation: saved.credentials.location, ...(saved.note ? { credentialNote: saved.note } : {}) };
}

/** Username and password (and a 2FA code when the account has one), typed here. */
async function passwordSignIn(server: string, flags: LoginFlags): Promise<SignedIn> {
  const username = flags.username ?? await ask('Username or e-mail: ');
  const password = typeof flags.password === 'string' ? flags.password : process.env.COFFER_PASSWORD ?? await ask('Password: ', { secret: true });
  let result = await login(server, { login: username, password, deviceName: flags.deviceName, platform: platform() });
  if (result.status === 'mfa-required') {
    const code = flags.code ?? await ask('Two-factor code (or a recovery code): ');
    result = await completeLogin2fa(server, { challenge: result.challenge, ...(/^\d{6}$/.test(code.trim()) ? { code: code.trim() } : { recoveryCode: code }) });
  }
  if (result.status !== 'signed-in') throw new Error('sign-in did not complete');
  return result;
}

/** No password typed here: the user approves this device in a browser where they are signed in. */
async function browserSignIn(server: string, flags: LoginFlags, say: (line: string) => void): Promise<SignedIn> {
  const start = await startDeviceLogin(server, { deviceName: flags.deviceName ?? hostname(), platform: platform() });
  say(`To sign this device in, open ${start.verificationUri} in a browser where you are signed in and enter the code ${start.userCode}`);
  say(`(or open ${start.verificationUriComplete}). Waiting for approval; the code expires in ${Math.round(start.expiresIn / 60)} minutes…`);
  return pollDeviceLogin(server, start);
}

function normalizeServer(s: string): string {
  let url: URL;
  try {
    url = new URL(/^https?:\/\//.test(s) ? s : `https://${s}`);
  } catch {
    throw new Error(`"${s}" is not a server address; give it as https://drive.example.org`);
  }
  return url.origin + url.pathname.replace(/\/+$/, '');
}

/**
 * A folder already linked (it holds a root marker) cannot be linked to another account; the same
 * account on this device (signed out remotely) signs in again instead. Returns that account, if so.
 */
async function linkedAccount(store: AccountStore, folder: string, server: string): Promise<Account | null> {
  const marker = await readFile(join(folder, ROOT_MARKER), 'utf8').catch(() => null);
  if (marker === null) return null;
  const name = (JSON.parse(marker) as { account?: string }).account;
  const account = (await store.list()).find((a) => a.name === name && a.folder === folder && a.server === server);
  if (account) return account;
  throw new Error(`${folder} is already linked to an account (${ROOT_MARKER} is there); pick another folder, or disconnect that account first.`);
}
