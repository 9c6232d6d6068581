/** `coffer accounts`: the accounts linked on this device, their folders, state, last sync and where their credentials are kept. */
import { Command } from 'commander';
import { AccountStore } from '../../accounts/account-store.ts';
import { describeCredentials } from '../../accounts/credential-stores.ts';
import { output } from '../output.ts';

export function accountsCommand(): Command {
  return new Command('accounts').description('List the accounts linked on this device')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      const store = new AccountStore();
      const f = await store.read();
      const out = output(!!opts.json);
      const accounts = f.accounts.map((a) => ({ ...a, ...describeCredentials(store, a) }));
      out.result({ accounts, defaultAccount: f.defaultAccount ?? null }, () => {
        if (f.accounts.length === 0) return out.line('No account is linked on this device: run `coffer login <server> --folder <folder>`.');
        for (const a of accounts) {
          const where = a.credentialStore === 'keyring' ? 'OS keyring' : `file ${a.credentialLocation}`;
          out.line(`${a.name === f.defaultAccount ? '*' : ' '} ${a.name}\t${a.username} on ${a.server}\t${a.folder}\tlast sync: ${a.lastSyncAt ?? 'never'}\tcredentials: ${where}${a.lastError ? `\terror: ${a.lastError}` : ''}`);
        }
      });
    });
}
