/**
 * What a sync would do right now, without doing it: the plan, counted by
 * side and kind. `status` shows it; safe sign-out (next issue) builds its
 * list of "not yet in the cloud" from the same plan.
 */
import type { Problem, SyncIndex } from '../index/sync-index.ts';
import { plan, type Op } from '../reconciler/plan.ts';
import { pathOf, treeOf } from '../reconciler/tree.ts';
import { fileRows, scanFolder } from '../scanner/scan-folder.ts';
import { refreshRemote } from './remote-tree.ts';
import type { SyncApi } from './sync-engine.ts';

export interface SideCounts { files: number; folders: number; moves: number; deletes: number }
export interface SyncPreview {
  upload: SideCounts;
  download: SideCounts;
  /** Paths of the local items that would be uploaded, moved or deleted on the server. */
  localChanges: string[];
  conflicts: string[];
  problems: Problem[];
  upToDate: boolean;
}

export async function previewSync(api: SyncApi, index: SyncIndex, opts: { folder: string; deviceName: string; now?: number }): Promise<SyncPreview> {
  const { rootId } = await refreshRemote(api, index);
  const base = treeOf(rootId, index.baseNodes().concat(index.baseNodes().some((n) => n.id === rootId) ? [] : [{ id: rootId, parentId: null, name: '', kind: 'folder', hash: null, size: 0 }]));
  const scan = await scanFolder(opts.folder, rootId, index, base, opts.now);
  index.transaction(() => { for (const r of fileRows(scan.entries)) index.putLocalFile(r); });
  const p = plan(treeOf(rootId, index.remoteNodes()), scan.tree, base, { device: opts.deviceName, day: new Date(opts.now ?? Date.now()).toISOString().slice(0, 10) });
  const counts = (side: Op['side']): SideCounts => {
    const ops = p.ops.filter((o) => o.side === side);
    return { files: ops.filter((o) => o.type === 'write').length, folders: ops.filter((o) => o.type === 'mkdir').length, moves: ops.filter((o) => o.type === 'move').length, deletes: ops.filter((o) => o.type === 'delete').length };
  };
  const localChanges = p.ops.filter((o) => o.side === 'remote').map((o) => pathOf(p.merged, o.id) ?? pathOf(base, o.id) ?? o.id);
  return {
    upload: counts('remote'), download: counts('local'), localChanges,
    conflicts: p.conflicts.map((c) => pathOf(p.merged, c.copyId) ?? c.copyId), problems: scan.problems,
    upToDate: p.ops.length === 0 && scan.problems.length === 0,
  };
}
