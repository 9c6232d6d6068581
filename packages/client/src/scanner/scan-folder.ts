/**
 * Builds the local tree from the sync folder.
 *
 * Identity: an item keeps its id across renames and moves because the index
 * remembers each id's inode; an item whose inode changed but that sits where
 * a base item of the same kind sat is that item (editors save by writing a
 * new file and renaming it over the old one). Anything else is new.
 *
 * Safety: a folder without its root marker is not scanned at all (an
 * unmounted disk must never read as "the user deleted everything"); a file
 * or folder that cannot be read, or whose local name the server cannot
 * hold, is reported and, if it was synced before, kept in the tree as it
 * was, so the planner never mistakes it for a deletion.
 */
import { lstat, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { nameProblem } from '@coffer/protocol';
import type { LocalFileRow, Problem, SyncIndex } from '../index/sync-index.ts';
import { childrenIndex, pathOf, type Node, type Tree, treeOf } from '../reconciler/tree.ts';
import { hashFile } from './hash-file.ts';
import { isIgnored, ROOT_MARKER } from './ignore.ts';

export interface LocalEntry {
  id: string;
  /** Path relative to the sync folder, in the file system's own spelling. */
  diskPath: string;
  node: Node;
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
}

export interface ScanResult {
  tree: Tree;
  /** Every item found (and every unreadable synced one kept), by id. */
  entries: Map<string, LocalEntry>;
  problems: Problem[];
}

export class FolderMissingError extends Error {
  constructor(folder: string) {
    super(`The sync folder ${folder} is missing or is not the folder this account was linked to (no ${ROOT_MARKER}); is a disk unmounted? Nothing was synced.`);
    this.name = 'FolderMissingError';
  }
}

interface Found {
  diskPath: string;
  name: string;
  parentKey: string;
  kind: 'file' | 'folder';
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
}

export async function scanFolder(folder: string, rootId: string, index: SyncIndex, base: Tree, now = Date.now()): Promise<ScanResult> {
  const rootStat = await stat(join(folder, ROOT_MARKER)).catch(() => null);
  if (!rootStat) throw new FolderMissingError(folder);
  const problems: Problem[] = [];
  const problem = (path: string, kind: Problem['kind'], message: string) => problems.push({ path, kind, message, at: now });

  // 1. Walk: every entry with its inode, keyed by its disk path.
  const found: Found[] = [];
  const unreadableDirs: string[] = [];
  const rootKey = '';
  const queue: string[] = [rootKey];
  while (queue.length) {
    const dir = queue.shift()!;
    let names: string[];
    try {
      names = (await readdir(join(folder, dir))).sort();
    } catch (e) {
      problem(dir, 'unreadable', `cannot list this folder: ${(e as Error).message}`);
      unreadableDirs.push(dir);
      continue;
    }
    const seenNames = new Set<string>();
    for (const diskName of names) {
      if (isIgnored(diskName)) continue;
      const diskPath = dir ? `${dir}/${diskName}` : diskName;
      let st;
      try {
        st = await lstat(join(folder, diskPath));
      } catch {
        continue; // removed while we looked: the next scan sees it as gone
      }
      if (!st.isFile() && !st.isDirectory()) {
        problem(diskPath, 'unsupported-name', st.isSymbolicLink() ? 'symbolic links are not synced' : 'only files and folders are synced');
        continue;
      }
      const name = diskName.normalize('NFC');
      const why = nameProblem(name) ?? (seenNames.has(name) ? 'same name as another item in another Unicode form' : null);
      seenNames.add(name);
      found.push({ diskPath, name: why ? `\u0000${why}` : name, parentKey: dir, kind: st.isDirectory() ? 'folder' : 'file', dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs });
      if (st.isDirectory() && !why) queue.push(diskPath);
    }
  }

  // 2. Identity: by inode first, then by place (a file saved over another).
  const rows = index.localFiles();
  const byInode = new Map(rows.map((r) => [`${r.dev}:${r.ino}`, r]));
  const rowById = new Map(rows.map((r) => [r.id, r]));
  const basePaths = new Map<string, Node>();
  for (const n of base.nodes.values()) if (n.id !== base.rootId) basePaths.set(pathOf(base, n.id) ?? '', n);
  const idOf = new Map<string, string>([[rootKey, rootId]]);
  const claimed = new Set<string>([rootId]);
  for (const f of found) {
    const row = byInode.get(`${f.dev}:${f.ino}`);
    const known = row && base.nodes.get(row.id);
    if (row && !claimed.has(row.id) && (!known || known.kind === f.kind)) { idOf.set(f.diskPath, row.id); claimed.add(row.id); }
  }
  const nfcPath = (f: Found) => f.diskPath.split('/').map((s) => s.normalize('NFC')).join('/');
  for (const f of found) {
    if (idOf.has(f.diskPath)) continue;
    const b = basePaths.get(nfcPath(f));
    const id = b && b.kind === f.kind && !claimed.has(b.id) ? b.id : `local:${f.dev}:${f.ino}`;
    idOf.set(f.diskPath, id);
    claimed.add(id);
  }

  // 3. Nodes, with content hashes (reused while size, mtime and inode are unchanged).
  const entries = new Map<string, LocalEntry>();
  const nodes: Node[] = [{ id: rootId, parentId: null, name: '', kind: 'folder', hash: null, size: 0 }];
  const keepAsBase = (id: string) => { const b = base.nodes.get(id); if (b) nodes.push(b); return b !== undefined; };
  const skipped = new Set<string>();
  for (const f of found) {
    const id = idOf.get(f.diskPath)!;
    const parentId = idOf.get(f.parentKey);
    if (parentId === undefined || skipped.has(f.parentKey)) { skipped.add(f.diskPath); continue; }
    if (f.name.startsWith('\u0000')) {
      problem(f.diskPath, 'unsupported-name', `not synced: the name ${f.name.slice(1)}`);
      skipped.add(f.diskPath);
      if (keepAsBase(id)) keepSubtree(base, id, nodes);
      continue;
    }
    let hash: string | null = null;
    if (f.kind === 'file') {
      const row = rowById.get(id);
      if (row && row.hash && row.ino === f.ino && row.size === f.size && row.mtimeMs === f.mtimeMs) hash = row.hash;
      else {
        try {
          hash = (await hashFile(join(folder, f.diskPath))).hash;
        } catch (e) {
          problem(f.diskPath, 'unreadable', `cannot read this file: ${(e as Error).message}`);
          keepAsBase(id);
          continue;
        }
      }
    }
    const node: Node = { id, parentId, name: f.name, kind: f.kind, hash, size: f.kind === 'file' ? f.size : 0 };
    nodes.push(node);
    entries.set(id, { id, diskPath: f.diskPath, node, dev: f.dev, ino: f.ino, size: f.size, mtimeMs: f.mtimeMs });
  }
  // A folder that could not be listed keeps its synced contents as they were.
  for (const dir of unreadableDirs) {
    const id = idOf.get(dir);
    if (id) keepSubtree(base, id, nodes);
  }
  const tree = treeOf(rootId, dedupe(nodes));
  return { tree, entries, problems };
}

function keepSubtree(base: Tree, id: string, nodes: Node[]): void {
  const kids = childrenIndex(base);
  const stack = [...(kids.get(id) ?? [])];
  while (stack.length) {
    const n = stack.pop()!;
    nodes.push(n);
    stack.push(...(kids.get(n.id) ?? []));
  }
}

function dedupe(nodes: Node[]): Node[] {
  const byId = new Map<string, Node>();
  for (const n of nodes) if (!byId.has(n.id)) byId.set(n.id, n);
  return [...byId.values()];
}

/** What the index should remember about each scanned item. */
export function fileRows(entries: Map<string, LocalEntry>): LocalFileRow[] {
  return [...entries.values()].map((e) => ({ id: e.id, dev: e.dev, ino: e.ino, size: e.size, mtimeMs: e.mtimeMs, hash: e.node.hash }));
}
