/**
 * `coffer status`: what a sync would do now (uploads, downloads, moves and
 * deletions on each side), conflicts (coming ones, and the conflict copies
 * earlier syncs made that are still there), files that cannot be synced,
 * why the next sync would stop and ask, and the last sync. It plans but
 * changes nothing in the folder or on the server.
 */
import { Command } from 'commander';
import { output, plural } from '../output.ts';

export function statusCommand(): Command {
  return new Command('status').description('Show pending uploads and downloads, conflicts and errors of an account')
    .option('--account <name>', 'which linked account')
    .option('--json', 'machine-readable output')
    .action(async (flags: { account?: string; json?: boolean }) => {
      const out = output(!!flags.json);
      // Loaded here, not at the top: every other verb of the program starts without them.
      const [{ AccountStore }, { openAccount }, { previewSync }] = await Promise.all([
        import('../../accounts/account-store.ts'), import('../../accounts/open-account.ts'), import('../../sync/preview.ts'),
      ]);
      const o = await openAccount(new AccountStore(), flags.account);
      try {
        const s = await previewSync(o.syncApi, o.index, { folder: o.account.folder, deviceName: o.account.deviceName });
        const value = { account: o.account.name, folder: o.account.folder, server: o.account.server, lastSyncAt: o.account.lastSyncAt ?? null, lastError: o.account.lastError ?? null, ...s };
        out.result(value, () => {
          out.line(`${o.account.name}: ${o.account.folder} ⇄ ${o.account.server} (last sync: ${o.account.lastSyncAt ?? 'never'})`);
          out.line(`to upload: ${plural(s.upload.files, 'file')}, ${plural(s.upload.folders, 'folder')}, ${plural(s.upload.moves, 'move')}, ${plural(s.upload.deletes, 'deletion')}`);
          out.line(`to download: ${plural(s.download.files, 'file')}, ${plural(s.download.folders, 'folder')}, ${plural(s.download.moves, 'move')}, ${plural(s.download.deletes, 'deletion')}`);
          for (const w of s.warnings) out.line(`warning: ${w}`);
          for (const c of s.conflicts) out.line(`conflict: ${c}`);
          for (const c of s.unresolvedConflicts) out.line(`conflict copy: ${c.path} (your version of ${c.original}; compare, keep what you need, then delete the copy)`);
          for (const p of s.problems) out.line(`not synced: ${p.path}: ${p.message}`);
          if (s.staleTemps.length) out.line(`${plural(s.staleTemps.length, 'unfinished download')} left by an interrupted sync (the next sync removes them)`);
          if (s.upToDate) out.line('up to date');
        });
      } finally {
        o.close();
      }
    });
}
