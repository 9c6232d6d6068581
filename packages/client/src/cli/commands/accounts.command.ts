/** `coffer accounts`: the accounts linked on this device, their folders, state and last sync. */
import { Command } from 'commander';
import { AccountStore } from '../../accounts/account-store.ts';
import { output } from '../output.ts';

export function accountsCommand(): Command {
  return new Command('accounts').description('List the accounts linked on this device')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      const store = new AccountStore();
      const f = await store.read();
      const out = output(!!opts.json);
      out.result({ accounts: f.accounts, defaultAccount: f.defaultAccount ?? null }, () => {
        if (f.accounts.length === 0) return out.line('No account is linked on this device: run `coffer login <server> --folder <folder>`.');
        for (const a of f.accounts) {
          out.line(`${a.name === f.defaultAccount ? '*' : ' '} ${a.name}\t${a.username} on ${a.server}\t${a.folder}\tlast sync: ${a.lastSyncAt ?? 'never'}${a.lastError ? `\terror: ${a.lastError}` : ''}`);
        }
      });
    });
}
