/**
 * `coffer disconnect`: sign this device out of an account without losing a
 * file (see signout/disconnect.ts for the order of steps).
 */
import { Command } from 'commander';
import { output, plural } from '../output.ts';

interface Flags { account?: string; dryRun?: boolean; wait?: boolean; force?: boolean; removeLocalFiles?: boolean; json?: boolean }

export function disconnectCommand(): Command {
  return new Command('disconnect').description('Sign this device out of an account safely: finish every change not yet in the cloud first')
    .option('--account <name>', 'which linked account')
    .option('--dry-run', 'say exactly what would happen, change nothing')
    .option('--wait', 'keep retrying until every change is in the cloud')
    .option('--force', 'disconnect even if changes are not in the cloud (the local files stay)')
    .option('--remove-local-files', 'also delete local files whose exact content the server confirmed (others are kept and listed)')
    .option('--json', 'machine-readable output')
    .action(async (flags: Flags) => {
      const out = output(!!flags.json);
      // Loaded here, not at the top: every other verb of the program starts without them.
      const [{ AccountStore }, { openAccount }, { disconnect, DisconnectRefusedError }, { describe }] = await Promise.all([
        import('../../accounts/account-store.ts'), import('../../accounts/open-account.ts'), import('../../signout/disconnect.ts'), import('../../signout/local-pending.ts'),
      ]);
      const o = await openAccount(new AccountStore(), flags.account, { allowSignedOut: true });
      try {
        const r = await disconnect(o, { dryRun: flags.dryRun, wait: flags.wait, force: flags.force, removeLocalFiles: flags.removeLocalFiles, log: (l) => out.line(l) });
        out.result(r, () => {
          if (r.dryRun) {
            out.line(`dry run: nothing was changed. Disconnecting ${r.account} would:`);
            if (r.pendingBefore.length) {
              out.line(`  first finish ${plural(r.pendingBefore.length, 'change')} not yet in the cloud:`);
              for (const i of r.pendingBefore) out.line(`    ${describe(i)}`);
            } else out.line('  find nothing to finish: every change is in the cloud');
            out.line('  then sign this device out on the server and delete its credentials, index and temporary files');
            if (flags.removeLocalFiles) out.line(`  then delete ${plural(r.removedFiles.length, 'file')} whose content the server confirmed, and keep ${plural(r.keptFiles.length, 'file')}: ${r.keptFiles.join(', ')}`);
            else out.line('  and leave every file in the folder where it is');
            return;
          }
          if (r.leftBehind.length) out.line(`disconnected with --force; ${plural(r.leftBehind.length, 'change')} did not reach the cloud (the files stay here)`);
          if (flags.removeLocalFiles) out.line(`removed ${plural(r.removedFiles.length, 'file')}; kept ${plural(r.keptFiles.length, 'file')}`);
        });
      } catch (e) {
        if (e instanceof DisconnectRefusedError) {
          if (flags.json) process.stdout.write(JSON.stringify(e.report, null, 2) + '\n');
          process.stderr.write(e.message + '\n');
          process.exitCode = 2;
          return;
        }
        throw e;
      } finally {
        o.close();
      }
    });
}
