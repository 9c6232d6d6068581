/**
 * Remote wipe, the device's side. The server says (403 DEVICE_WIPE_REQUESTED
 * on any call) that this device is to be wiped. The client then removes from
 * the folder only files whose exact content the server confirmed, keeps and
 * reports every other file (new or changed here, unreadable, refused), sends
 * that report, and deletes its credentials, index and temporary files.
 * After the server records the report, this device's credentials are dead.
 */
import type { OpenedAccount } from '../accounts/open-account.ts';
import { accountLocal, describe } from './local-pending.ts';
import { clearState, markerRootId, removeConfirmed, type DisconnectReport } from './disconnect.ts';

export interface WipeOutcome {
  removed: string[];
  kept: { path: string; reason: string }[];
}

export function isWipeRequest(e: unknown): boolean {
  return (e as { code?: string })?.code === 'DEVICE_WIPE_REQUESTED';
}

export async function performWipe(o: OpenedAccount, log: (line: string) => void = () => {}): Promise<WipeOutcome> {
  const status = await o.api.wipeStatus();
  if (!status.wipe) throw new Error('the server has no wipe request for this device');
  const rootId = o.index.getMeta('root_id') ?? await markerRootId(o.account.folder);
  const reasons = new Map<string, string>();
  const report: DisconnectReport = { account: o.account.name, dryRun: false, pendingBefore: [], leftBehind: [], finished: false, revoked: 'no', removedFiles: [], keptFiles: [], stateCleared: false };
  if (rootId) {
    for (const p of (await accountLocal(o.index, o.account.folder, rootId)).pending) reasons.set(p.path, describe(p).slice(p.path.length + 2));
    await removeConfirmed(o, rootId, report, () => {});
  }
  const kept = report.keptFiles.map((path) => ({ path, reason: reasons.get(path) ?? 'its content is not confirmed on the server' }));
  await o.api.confirmWipe({ removedCount: report.removedFiles.length, removed: report.removedFiles.slice(0, 10_000), kept: kept.slice(0, 10_000) });
  await clearState(o, o.store);
  log(`this device was wiped at the account owner's request: removed ${report.removedFiles.length} file(s) that are safely in the cloud`
    + (kept.length ? `; kept ${kept.length} that are not:\n${kept.map((k) => `  ${k.path}: ${k.reason}`).join('\n')}` : ''));
  return { removed: report.removedFiles, kept };
}
