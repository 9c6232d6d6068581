/**
 * What a sync would do right now, without doing it: the plan, counted by
 * side and kind. `status` shows it; safe sign-out (next issue) builds its
 * list of "not yet in the cloud" from the same plan.
 *
 * It also lists what earlier runs left for the user: conflict copies that
 * are still there (the index remembers every copy a sync made, by item id,
 * so a renamed copy is still found; one that is gone is forgotten), and
 * download temp files a crash left behind (the next sync removes them).
 */
import type { Problem, SyncIndex } from '../index/sync-index.ts';
import { plan, type Op } from '../reconciler/plan.ts';
import { pathOf, type Tree } from '../reconciler/tree.ts';
import { scanFolder, type ScanResult } from '../scanner/scan-folder.ts';
import { foldsCase } from '../scanner/case-folding.ts';
import { checkDriveEmptied, refreshRemote } from './remote-tree.ts';
import type { SyncApi } from './sync-engine.ts';

export interface SideCounts { files: number; folders: number; moves: number; deletes: number }
export interface UnresolvedConflict {
  /** Where the conflict copy is now, relative to the folder. */
  path: string;
  /** The file both sides changed. */
  original: string;
  /** When the copy was made (ms). */
  at: number;
}
export interface SyncPreview {
  upload: SideCounts;
  download: SideCounts;
  /** Paths of the local items that would be uploaded, moved or deleted on the server. */
  localChanges: string[];
  /** Conflict copies the next sync would make. */
  conflicts: string[];
  /** Conflict copies earlier syncs made that are still in the folder. */
  unresolvedConflicts: UnresolvedConflict[];
  problems: Problem[];
  /** Download temp files left by a crash (the next sync removes them). */
  staleTemps: string[];
  /** Why the next sync would stop and ask (an emptied drive). */
  warnings: string[];
  upToDate: boolean;
}

export async function previewSync(api: SyncApi, index: SyncIndex, opts: { folder: string; deviceName: string; now?: number }): Promise<SyncPreview> {
  const { rootId } = await refreshRemote(api, index);
  const base = index.baseTree(rootId);
  const scan = await scanFolder(opts.folder, rootId, index, base, opts.now, { removeStaleTemps: false });
  const { put } = scan.rowChanges;
  if (put.length) index.transaction(() => { for (const r of put) index.putLocalFile(r); });
  const remote = index.remoteTree(rootId);
  const p = plan(remote, scan.tree, base, { device: opts.deviceName, day: new Date(opts.now ?? Date.now()).toISOString().slice(0, 10), caseInsensitive: await foldsCase(opts.folder) });
  const counts = (side: Op['side']): SideCounts => {
    const ops = p.ops.filter((o) => o.side === side);
    return { files: ops.filter((o) => o.type === 'write').length, folders: ops.filter((o) => o.type === 'mkdir').length, moves: ops.filter((o) => o.type === 'move').length, deletes: ops.filter((o) => o.type === 'delete').length };
  };
  const localChanges = p.ops.filter((o) => o.side === 'remote').map((o) => pathOf(p.merged, o.id) ?? pathOf(base, o.id) ?? o.id);
  const warnings: string[] = [];
  try {
    checkDriveEmptied(remote, base, p);
  } catch (e) {
    warnings.push((e as Error).message.replace('this sync would', 'a sync would').replace('Nothing was deleted; check', 'A sync will stop and ask; check'));
  }
  return {
    upload: counts('remote'), download: counts('local'), localChanges,
    conflicts: p.conflicts.map((c) => pathOf(p.merged, c.copyId) ?? c.copyId),
    unresolvedConflicts: unresolvedConflicts(index, scan),
    problems: scan.problems, staleTemps: scan.staleTemps, warnings,
    upToDate: p.ops.length === 0 && scan.problems.length === 0,
  };
}

/** The conflict copies still in the folder, where they are now; the index forgets the ones that are gone. */
export function unresolvedConflicts(index: SyncIndex, scan: Pick<ScanResult, 'tree' | 'entries'>): UnresolvedConflict[] {
  const out: UnresolvedConflict[] = [];
  for (const c of index.conflicts()) {
    const path = scan.entries.get(c.id)?.diskPath ?? pathOrNull(scan.tree, c.id);
    if (path === null) index.deleteConflict(c.id);
    else out.push({ path, original: c.original, at: c.at });
  }
  return out;
}

function pathOrNull(tree: Tree, id: string): string | null {
  return tree.nodes.has(id) ? pathOf(tree, id) : null;
}
