/**
 * What this device holds that is not safely in the cloud, computed from the
 * folder and the index alone (no server needed, nothing written): every
 * item new, changed, moved or deleted here since the last agreement with
 * the server, and every file that could not be read or was refused.
 *
 * And the opposite list: files whose exact content the server confirmed —
 * the same content hash here, in the base, and in the server's tree as the
 * index last saw it. Only those may be removed by a disconnect or a wipe.
 */
import type { SyncIndex } from '../index/sync-index.ts';
import { pathOf, type Node, type Tree } from '../reconciler/tree.ts';
import { knownInodes, scanFolder, walkFolder, walkMatchesIndex, type FolderWalk, type ScanResult } from '../scanner/scan-folder.ts';

export type PendingKind = 'new' | 'changed' | 'moved' | 'deleted' | 'unreadable' | 'rejected' | 'unsupported';

export interface PendingItem {
  path: string;
  kind: PendingKind;
  folder: boolean;
  detail?: string;
}

export interface LocalAccounting {
  pending: PendingItem[];
  /** Files safe to remove: their content is on the server. Paths relative to the folder, as on disk. (Empty unless `confirm`.) */
  confirmed: { id: string; path: string; hash: string }[];
  /** Files that are not confirmed (the rest of the folder's files). (Empty unless `confirm`.) */
  unconfirmed: string[];
  scan: ScanResult;
}

export interface AccountingOptions {
  /** Remove download leftovers a crash left (default true; a dry run only looks). */
  removeStaleTemps?: boolean;
  /** The folder as a walk just found it (see walkFolder), instead of walking again. */
  walk?: FolderWalk;
  /** Also sort the files into confirmed and unconfirmed (default true; reads the whole remote tree). */
  confirm?: boolean;
}

/**
 * What is not in the cloud, as `accountLocal` says, but quick when nothing is: when the folder is exactly
 * the base (scan-folder.ts, walkMatchesIndex: the digest of the last walk that was the base, or else
 * every item where the base has it, every file with the stamp whose hash is the base's, nothing else, no
 * problem) and the last sync left no refusal, the answer is "nothing" without building a tree; otherwise
 * the full accounting, from the same walk. The folder is walked in full either way: a change made while
 * no client ran is found.
 */
export async function pendingLocal(index: SyncIndex, folder: string, rootId: string, opts: Omit<AccountingOptions, 'walk'> = {}): Promise<PendingItem[]> {
  const walk = await walkFolder(folder, knownInodes(index), Date.now(), opts);
  if (walkMatchesIndex(index, walk, rootId, false) && !index.problems().some((p) => p.kind === 'rejected')) return [];
  return (await accountLocal(index, folder, rootId, { ...opts, walk, confirm: false })).pending;
}

export async function accountLocal(index: SyncIndex, folder: string, rootId: string, opts: AccountingOptions = {}): Promise<LocalAccounting> {
  const base = index.baseTree(rootId);
  const scan = await scanFolder(folder, rootId, index, base, Date.now(), { removeStaleTemps: opts.removeStaleTemps }, opts.walk);
  const confirm = opts.confirm ?? true;
  const remote = confirm ? index.remoteTree(rootId).nodes : null;
  const onServer = (id: string) => (remote ? remote.has(id) : index.remoteNode(id) !== undefined);
  const pending: PendingItem[] = [];
  const confirmed: LocalAccounting['confirmed'] = [];
  const unconfirmed: string[] = [];
  const where = (t: Tree, id: string) => pathOf(t, id) ?? id;
  for (const n of scan.tree.nodes.values()) {
    if (n.id === rootId) continue;
    const b = base.nodes.get(n.id);
    const path = scan.entries.get(n.id)?.diskPath ?? where(scan.tree, n.id);
    const folderItem = n.kind === 'folder';
    if (!b) pending.push({ path, kind: 'new', folder: folderItem });
    else {
      if (n.kind === 'file' && n.hash !== b.hash) pending.push({ path, kind: 'changed', folder: false });
      if (n.parentId !== b.parentId || n.name !== b.name) pending.push({ path, kind: 'moved', folder: folderItem, detail: `was ${where(base, n.id)}` });
    }
    if (remote && n.kind === 'file' && scan.entries.has(n.id)) {
      const r = remote.get(n.id);
      if (b && r && n.hash === b.hash && r.hash === b.hash) confirmed.push({ id: n.id, path, hash: n.hash! });
      else unconfirmed.push(path);
    }
  }
  for (const b of base.nodes.values()) {
    if (b.id === rootId || scan.tree.nodes.has(b.id)) continue;
    // Gone here but still on the server: the deletion has not reached the cloud yet.
    if (onServer(b.id)) pending.push({ path: where(base, b.id), kind: 'deleted', folder: b.kind === 'folder' });
  }
  for (const p of scan.problems) pending.push({ path: p.path, kind: p.kind === 'unreadable' ? 'unreadable' : 'unsupported', folder: false, detail: p.message });
  // The server's refusals from the last sync explain why an item is still pending.
  for (const p of index.problems()) {
    if (p.kind !== 'rejected') continue;
    const item = pending.find((x) => x.path === p.path);
    if (item) item.detail = `refused by the server: ${p.message}`;
    else pending.push({ path: p.path, kind: 'rejected', folder: false, detail: p.message });
  }
  pending.sort((a, b) => a.path.localeCompare(b.path) || a.kind.localeCompare(b.kind));
  return { pending, confirmed, unconfirmed, scan };
}

/** Items a person would call "a change": folders created empty count too, but an item listed twice (moved and changed) once. */
export function pendingPaths(items: PendingItem[]): string[] {
  return [...new Set(items.map((i) => i.path))];
}

export function describe(i: PendingItem): string {
  const what: Record<PendingKind, string> = {
    new: i.folder ? 'new folder, not on the server yet' : 'new file, not uploaded yet',
    changed: 'changed here, the change is not uploaded yet',
    moved: 'moved or renamed here, not yet on the server',
    deleted: 'deleted here, still on the server',
    unreadable: 'cannot be read, so it was never uploaded',
    rejected: 'refused by the server',
    unsupported: 'cannot be synced',
  };
  return `${i.path}: ${what[i.kind]}${i.detail ? ` (${i.detail})` : ''}`;
}

export type { Node };
