/**
 * `coffer sync [--account A] [--watch]`: sync once, or keep watching the
 * folder (file watcher), the server (push channel) and a slow poll as a
 * fallback, syncing shortly after anything changes.
 */
import { Command } from 'commander';
import type cliProgress from 'cli-progress';
import type { OpenedAccount } from '../../accounts/open-account.ts';
import type { SyncReport } from '../../sync/sync-engine.ts';
import { output, plural, type Output } from '../output.ts';

type SingleBar = InstanceType<typeof cliProgress.SingleBar>;

interface SyncFlags { account?: string; watch?: boolean; yes?: boolean; json?: boolean; maxDelete?: string }

export function syncCommand(): Command {
  return new Command('sync').description('Sync an account\'s folder with the server, once or continuously (--watch)')
    .option('--account <name>', 'which linked account (default: the only or default one)')
    .option('--watch', 'keep running: sync whenever the folder or the server changes')
    .option('--yes', 'go ahead with a run that would delete more than the allowed share of the folder')
    .option('--max-delete <percent>', 'pause a run that would delete more than this share of the synced items', '50')
    .option('--json', 'machine-readable output')
    .action(async (flags: SyncFlags) => {
      const out = output(!!flags.json);
      // Loaded here, not at the top: every other verb of the program starts without them.
      const [{ AccountStore }, { openAccount }] = await Promise.all([import('../../accounts/account-store.ts'), import('../../accounts/open-account.ts')]);
      const opened = await openAccount(new AccountStore(), flags.account);
      try {
        const run = () => runOnce(opened, flags, out);
        if (!flags.watch) {
          await run();
          return;
        }
        await run().catch((e) => out.line(`sync failed: ${(e as Error).message}`));
        const { watchAccount } = await import('../../sync/watch.ts'); // loads the native file watcher only when watching
        const stoppedBecause = await watchAccount(opened, run, (msg) => out.line(msg));
        if (stoppedBecause) process.exitCode = 1; // signed out, wiped or another server: not a normal stop
      } finally {
        opened.close();
      }
    });
}

async function runOnce(o: OpenedAccount, flags: SyncFlags, out: Output): Promise<SyncReport> {
  const { syncOnce } = await import('../../sync/sync-engine.ts');
  const progress = !out.json && process.stderr.isTTY ? new Progress((await import('cli-progress')).default) : null;
  try {
    const report = await syncOnce(o.syncApi, o.index, {
      folder: o.account.folder, deviceName: o.account.deviceName, allowDeletes: !!flags.yes,
      maxDeleteShare: Number(flags.maxDelete ?? 50) / 100,
      onPlan: (p) => progress?.start(p.ops.length, p.ops.filter((x) => x.type === 'write').reduce((n, x) => n + (x.type === 'write' ? x.size : 0), 0)),
      onStep: (op) => progress?.step(op.type === 'write' ? op.size : 0),
    });
    progress?.stop();
    await o.store.update(o.account.name, { lastSyncAt: new Date().toISOString(), lastError: null });
    out.result(report, () => printReport(out, report));
    return report;
  } catch (e) {
    progress?.stop();
    const { isWipeRequest, performWipe } = await import('../../signout/wipe.ts');
    if (isWipeRequest(e)) {
      await performWipe(o, (l) => out.line(l));
      throw Object.assign(new Error('this device was wiped and signed out; the account is no longer linked here'), { code: 'DEVICE_WIPED' });
    }
    if ((e as { code?: string }).code === 'SESSION_REVOKED') {
      const msg = `this device was signed out of ${o.account.name}; local files and unsynced changes are kept. Sign in again with \`coffer login ${o.account.server} --folder ${o.account.folder} --name ${o.account.name}\``;
      await o.store.update(o.account.name, { lastError: msg }).catch(() => {});
      throw Object.assign(new Error(msg), { code: 'SESSION_REVOKED' });
    }
    await o.store.update(o.account.name, { lastError: (e as Error).message }).catch(() => {});
    throw e;
  }
}

/** A progress bar on the terminal (stderr): steps, bytes, speed and time left. */
class Progress {
  private readonly lib: typeof cliProgress;
  private bar: SingleBar | null = null;
  private bytes = 0;
  private totalBytes = 0;
  private started = 0;
  constructor(lib: typeof cliProgress) {
    this.lib = lib;
  }
  start(steps: number, bytes: number): void {
    if (steps === 0) return;
    this.stop();
    this.bytes = 0;
    this.totalBytes = bytes;
    this.started = Date.now();
    this.bar = new this.lib.SingleBar({ format: 'syncing [{bar}] {value}/{total} steps | {mb}/{totalMb} MB | {speed} MB/s | {eta_formatted} left', stream: process.stderr, hideCursor: true }, this.lib.Presets.shades_classic);
    this.bar.start(steps, 0, { mb: '0.0', totalMb: (bytes / 1e6).toFixed(1), speed: '0.0' });
  }
  step(bytes: number): void {
    this.bytes += bytes;
    const secs = Math.max(0.001, (Date.now() - this.started) / 1000);
    this.bar?.increment(1, { mb: (this.bytes / 1e6).toFixed(1), totalMb: (this.totalBytes / 1e6).toFixed(1), speed: (this.bytes / 1e6 / secs).toFixed(1) });
  }
  stop(): void {
    this.bar?.stop();
    this.bar = null;
  }
}

function printReport(out: Output, r: SyncReport): void {
  const parts = [plural(r.uploaded, 'upload'), plural(r.downloaded, 'download'), plural(r.moved, 'move'), plural(r.deleted, 'deletion'), plural(r.created, 'new folder')];
  out.line(`synced: ${parts.join(', ')}`);
  for (const c of r.conflicts) out.line(`conflict: both sides changed a file; your version is kept as ${c}`);
  for (const p of r.problems) out.line(`not synced: ${p.path}: ${p.message}`);
  for (const s of r.skipped) out.line(`postponed: ${s.op.type} ${s.op.side === 'local' ? 'here' : 'on the server'}: ${s.reason}`);
  if (r.pendingLocal) out.line(`${plural(r.pendingLocal, 'local change')} not on the server yet`);
}
