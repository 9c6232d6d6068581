/**
 * `coffer status`: what a sync would do now (uploads, downloads, moves and
 * deletions on each side), conflicts, files that cannot be synced, and the
 * last sync. It plans but changes nothing.
 */
import { Command } from 'commander';
import { AccountStore } from '../../accounts/account-store.ts';
import { openAccount } from '../../accounts/open-account.ts';
import { previewSync } from '../../sync/preview.ts';
import { output, plural } from '../output.ts';

export function statusCommand(): Command {
  return new Command('status').description('Show pending uploads and downloads, conflicts and errors of an account')
    .option('--account <name>', 'which linked account')
    .option('--json', 'machine-readable output')
    .action(async (flags: { account?: string; json?: boolean }) => {
      const out = output(!!flags.json);
      const o = await openAccount(new AccountStore(), flags.account);
      try {
        const s = await previewSync(o.syncApi, o.index, { folder: o.account.folder, deviceName: o.account.deviceName });
        const value = { account: o.account.name, folder: o.account.folder, server: o.account.server, lastSyncAt: o.account.lastSyncAt ?? null, lastError: o.account.lastError ?? null, ...s };
        out.result(value, () => {
          out.line(`${o.account.name}: ${o.account.folder} ⇄ ${o.account.server} (last sync: ${o.account.lastSyncAt ?? 'never'})`);
          out.line(`to upload: ${plural(s.upload.files, 'file')}, ${plural(s.upload.folders, 'folder')}, ${plural(s.upload.moves, 'move')}, ${plural(s.upload.deletes, 'deletion')}`);
          out.line(`to download: ${plural(s.download.files, 'file')}, ${plural(s.download.folders, 'folder')}, ${plural(s.download.moves, 'move')}, ${plural(s.download.deletes, 'deletion')}`);
          for (const c of s.conflicts) out.line(`conflict: ${c}`);
          for (const p of s.problems) out.line(`not synced: ${p.path}: ${p.message}`);
          if (s.upToDate) out.line('up to date');
        });
      } finally {
        o.close();
      }
    });
}
