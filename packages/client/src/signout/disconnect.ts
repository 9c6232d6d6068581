/**
 * Safe disconnect: signing this device out of an account without losing a
 * file. In order:
 *
 * 1. find every local change not yet in the cloud (local-pending.ts);
 * 2. finish them with a normal sync (uploads verified by the server's
 *    content hash); if something cannot be finished — server unreachable,
 *    quota full, a file unreadable — stop, name every file at risk and the
 *    choices (--wait, --force, or copy them elsewhere), unless --force;
 * 3. revoke this device's session on the server;
 * 4. with --remove-local-files, delete only files whose exact content the
 *    server confirmed (and folders left empty), reporting those kept;
 * 5. delete the credentials, the index and temporary files; the folder's
 *    files stay.
 *
 * Every step is recorded in accounts.json before it starts, and each can
 * run twice, so a crash or Ctrl-C anywhere is continued by the next
 * `coffer disconnect`. --dry-run reads the index through a read-only
 * connection and changes nothing at all. Other accounts on the device are
 * never touched.
 */
import { copyFile, mkdtemp, readFile, readdir, rm, rmdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashFile } from '../scanner/hash-file.ts';
import { ROOT_MARKER, TEMP_PREFIX } from '../scanner/ignore.ts';
import { SyncIndex } from '../index/sync-index.ts';
import type { AccountStore } from '../accounts/account-store.ts';
import type { OpenedAccount } from '../accounts/open-account.ts';
import { accountLocal, describe, pendingLocal, type PendingItem } from './local-pending.ts';

export interface DisconnectOptions {
  dryRun?: boolean;
  /** Keep retrying to finish pending changes (until `waitMs`). */
  wait?: boolean;
  waitMs?: number;
  /** Disconnect even if changes remain (the local files stay). */
  force?: boolean;
  removeLocalFiles?: boolean;
  log?: (line: string) => void;
  sleep?: (ms: number) => Promise<void>;
}

export interface DisconnectReport {
  account: string;
  dryRun: boolean;
  /** Changes not in the cloud when disconnect started. */
  pendingBefore: PendingItem[];
  /** Changes still not in the cloud when the device was signed out (only with --force), or that block it. */
  leftBehind: PendingItem[];
  finished: boolean;
  revoked: 'yes' | 'already' | 'unreachable' | 'no';
  removedFiles: string[];
  keptFiles: string[];
  stateCleared: boolean;
}

export class DisconnectRefusedError extends Error {
  readonly code = 'CHANGES_NOT_IN_CLOUD';
  readonly report: DisconnectReport;
  constructor(report: DisconnectReport, cause: string) {
    const lines = report.leftBehind.map((i) => `  ${describe(i)}`);
    super(`Not disconnected: ${report.leftBehind.length} change(s) are not safely in the cloud${cause ? ` (${cause})` : ''}:\n${lines.join('\n')}\n`
      + 'Choose: `coffer disconnect --wait` to keep trying, `coffer disconnect --force` to disconnect anyway (the local files stay), or copy these files elsewhere first.');
    this.name = 'DisconnectRefusedError';
    this.report = report;
  }
}

export async function disconnect(o: OpenedAccount, opts: DisconnectOptions = {}): Promise<DisconnectReport> {
  const log = opts.log ?? (() => {});
  const rootId = o.index.getMeta('root_id') ?? await markerRootId(o.account.folder);
  const report: DisconnectReport = {
    account: o.account.name, dryRun: !!opts.dryRun, pendingBefore: [], leftBehind: [], finished: false,
    revoked: 'no', removedFiles: [], keptFiles: [], stateCleared: false,
  };
  if (opts.dryRun) return dryRun(o, rootId, opts, report);
  const step = o.account.disconnecting?.step;
  await o.store.update(o.account.name, { disconnecting: { startedAt: o.account.disconnecting?.startedAt ?? new Date().toISOString(), step: step ?? 'finishing' } });

  if (!step || step === 'finishing') {
    if (rootId) {
      report.pendingBefore = await pendingLocal(o.index, o.account.folder, rootId);
      const cause = await finish(o, rootId, opts, report, log);
      if (report.leftBehind.length && !opts.force) throw new DisconnectRefusedError(report, cause);
    }
    report.finished = report.leftBehind.length === 0;
    await o.store.update(o.account.name, { disconnecting: { startedAt: new Date().toISOString(), step: 'revoking' } });
  }

  // Revoke first: from here on, this device cannot change the drive any more.
  report.revoked = await revoke(o, log);
  await o.store.update(o.account.name, { disconnecting: { startedAt: new Date().toISOString(), step: 'clearing' } });

  if (opts.removeLocalFiles && rootId) await removeConfirmed(o, rootId, report, log);
  await clearState(o, o.store);
  report.stateCleared = true;
  log(`disconnected ${o.account.name}: credentials, index and temporary files removed${opts.removeLocalFiles ? '' : '; the files in ' + o.account.folder + ' stay'}`);
  return report;
}

/** Syncs until nothing is pending, or says why not. Returns the cause when something remains. */
async function finish(o: OpenedAccount, rootId: string, opts: DisconnectOptions, report: DisconnectReport, log: (l: string) => void): Promise<string> {
  if (report.pendingBefore.length === 0) return '';
  log(`finishing ${report.pendingBefore.length} change(s) not yet in the cloud…`);
  const deadline = Date.now() + (opts.waitMs ?? 24 * 3600_000);
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  let cause = '';
  for (let attempt = 1; ; attempt++) {
    try {
      const { syncOnce } = await import('../sync/sync-engine.ts'); // the engine only when something is left to finish
      await syncOnce(o.syncApi, o.index, { folder: o.account.folder, deviceName: o.account.deviceName });
      cause = '';
    } catch (e) {
      cause = (e as Error).message.split('\n')[0];
    }
    report.leftBehind = await pendingLocal(o.index, o.account.folder, rootId);
    if (report.leftBehind.length === 0) return '';
    if (!cause) cause = report.leftBehind.some((i) => i.kind === 'rejected') ? 'the server refused some files' : 'some changes could not be uploaded';
    if (!opts.wait || Date.now() > deadline) return cause;
    log(`still ${report.leftBehind.length} change(s) to finish (${cause}); retrying…`);
    await sleep(Math.min(60_000, 2_000 * attempt));
  }
}

async function revoke(o: OpenedAccount, log: (l: string) => void): Promise<DisconnectReport['revoked']> {
  if (!(await o.credentials.load())) return 'already';
  try {
    await o.api.logout();
    return 'yes';
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'SESSION_REVOKED' || (e as { status?: number }).status === 401) return 'already';
    log(`could not reach the server to sign this device out (${(e as Error).message}); sign it out from your devices list on another device`);
    return 'unreachable';
  }
}

/** Deletes files whose content the server confirmed (re-checked on disk right before), then folders left empty. */
export async function removeConfirmed(o: OpenedAccount, rootId: string, report: DisconnectReport, log: (l: string) => void): Promise<void> {
  const acc = await accountLocal(o.index, o.account.folder, rootId);
  for (const f of acc.confirmed) {
    const abs = join(o.account.folder, f.path);
    const now = await hashFile(abs).catch(() => null);
    if (now && now.hash === f.hash) {
      await rm(abs, { force: true });
      report.removedFiles.push(f.path);
    } else report.keptFiles.push(f.path);
  }
  report.keptFiles.push(...acc.unconfirmed);
  await removeEmptyFolders(o.account.folder, '');
  if (report.keptFiles.length) log(`kept ${report.keptFiles.length} file(s) whose content the server has not confirmed:\n${report.keptFiles.map((p) => `  ${p}`).join('\n')}`);
}

async function removeEmptyFolders(folder: string, rel: string): Promise<boolean> {
  let empty = true;
  for (const name of await readdir(join(folder, rel)).catch(() => [])) {
    const path = rel ? `${rel}/${name}` : name;
    if (name === ROOT_MARKER && !rel) continue;
    const st = await stat(join(folder, path)).catch(() => null);
    if (st?.isDirectory() && (await removeEmptyFolders(folder, path))) await rmdir(join(folder, path)).catch(() => { empty = false; });
    else empty = false;
  }
  return empty;
}

/** Credentials, index, temporary files, the folder's marker; then the account entry. Each part may already be gone. */
export async function clearState(o: OpenedAccount, store: AccountStore): Promise<void> {
  await o.credentials.clear();
  o.close();
  // Temporary files and the marker that linked the folder to the account (so it can be linked again later).
  for (const name of await readdir(o.account.folder).catch(() => [])) {
    if (name.startsWith(TEMP_PREFIX)) await rm(join(o.account.folder, name), { recursive: true, force: true });
  }
  await store.remove(o.account.name);
}

/** The drive root the folder was linked to at login (for an account that never synced). */
export async function markerRootId(folder: string): Promise<string | null> {
  try {
    return (JSON.parse(await readFile(join(folder, ROOT_MARKER), 'utf8')) as { rootId?: string }).rootId ?? null;
  } catch {
    return null;
  }
}

async function dryRun(o: OpenedAccount, rootId: string | null, opts: DisconnectOptions, report: DisconnectReport): Promise<DisconnectReport> {
  if (!rootId) return report;
  // Nothing of the account's state may change: the folder is looked at through a read-only connection to the index
  // (or, should that fail to open, a copy of it).
  const file = o.index.db.name;
  let copyDir: string | null = null;
  let view: SyncIndex;
  try {
    view = new SyncIndex(file, { readonly: true });
  } catch {
    copyDir = await mkdtemp(join(tmpdir(), 'coffer-dry-run-'));
    await copyFile(file, join(copyDir, 'index.sqlite'));
    await copyFile(`${file}-wal`, join(copyDir, 'index.sqlite-wal')).catch(() => {}); // committed pages not yet checkpointed
    view = new SyncIndex(join(copyDir, 'index.sqlite'));
  }
  try {
    if (opts.removeLocalFiles) {
      const acc = await accountLocal(view, o.account.folder, rootId, { removeStaleTemps: false });
      report.pendingBefore = acc.pending;
      report.removedFiles = acc.confirmed.map((f) => f.path);
      report.keptFiles = acc.unconfirmed;
    } else report.pendingBefore = await pendingLocal(view, o.account.folder, rootId, { removeStaleTemps: false });
    report.leftBehind = report.pendingBefore;
  } finally {
    view.close();
    if (copyDir) await rm(copyDir, { recursive: true, force: true });
  }
  return report;
}
