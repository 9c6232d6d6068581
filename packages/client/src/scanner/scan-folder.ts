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
 *
 * Names: the server stores names in Unicode NFC; a name on disk in another
 * form (macOS writes NFD) is the same item. Two names in one folder that
 * differ only in their normalization would be one name on the server: the
 * one already synced (or else the one already in NFC) is synced, the other
 * is reported. A name that is not valid UTF-8 cannot be stored at all and is
 * reported too (the directory is read as bytes, so it is never silently
 * dropped or mistaken for a deletion).
 *
 * Leftovers: a download writes to a `.coffer-dl-*` file next to its target
 * and renames it into place. A crash leaves that file behind; one nothing
 * has written to for STALE_TEMP_MS is removed by the next scan (a live
 * download writes all the time and gives up after 60 s without a byte, so
 * the age check never pulls a file from under a download another process —
 * `coffer sync --watch` while `coffer status` runs — is making right now).
 */
import { lstat, readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { normalizeName } from '@coffer/protocol';
import type { LocalFileRow, Problem, SyncIndex } from '../index/sync-index.ts';
import { childrenIndex, pathOf, type Node, type Tree, treeOf } from '../reconciler/tree.ts';
import { hashFile } from './hash-file.ts';
import { DOWNLOAD_TEMP_PREFIX, isIgnored, ROOT_MARKER } from './ignore.ts';

/** A download temp file untouched this long is a crash's leftover. */
export const STALE_TEMP_MS = 60 * 60 * 1000;

export interface ScanOptions {
  /** Remove stale download temp files (default true; `status` only reports them). */
  removeStaleTemps?: boolean;
}

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
  /** Download temp files left by a crash (older than STALE_TEMP_MS), relative paths; removed unless the scan was told to keep them. */
  staleTemps: string[];
}

export class FolderMissingError extends Error {
  constructor(folder: string) {
    super(`The sync folder ${folder} is missing or is not the folder this account was linked to (no ${ROOT_MARKER}); is a disk unmounted? Nothing was synced.`);
    this.name = 'FolderMissingError';
  }
}

interface Found {
  /** The path as the file system spells it (a name that is not UTF-8 gets a unique placeholder). */
  diskPath: string;
  /** For messages: the path with undecodable bytes shown as U+FFFD. */
  shown: string;
  name: string;
  parentKey: string;
  kind: 'file' | 'folder';
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
}

export async function scanFolder(folder: string, rootId: string, index: SyncIndex, base: Tree, now = Date.now(), opts: ScanOptions = {}): Promise<ScanResult> {
  const rootStat = await stat(join(folder, ROOT_MARKER)).catch(() => null);
  if (!rootStat) throw new FolderMissingError(folder);
  const problems: Problem[] = [];
  const problem = (path: string, kind: Problem['kind'], message: string) => problems.push({ path, kind, message, at: now });
  const staleTemps: string[] = [];
  const rows = index.localFiles();
  const byInode = new Map(rows.map((r) => [`${r.dev}:${r.ino}`, r]));

  // 1. Walk: every entry with its inode, keyed by its disk path.
  const found: Found[] = [];
  const unreadableDirs: string[] = [];
  const rootKey = '';
  const queue: string[] = [rootKey];
  while (queue.length) {
    const dir = queue.shift()!;
    const abs = join(folder, dir);
    let raw: Buffer[];
    try {
      raw = await readdir(abs, { encoding: 'buffer' });
    } catch (e) {
      problem(dir, 'unreadable', `cannot list this folder (${errText(e)}); what was synced in it is left as it is`);
      unreadableDirs.push(dir);
      continue;
    }
    const here: (Found & { nfc: boolean })[] = [];
    for (const bytes of raw) {
      const diskName = decodeName(bytes);
      const lossy = bytes.toString('utf8');
      const diskPath = dir ? `${dir}/${diskName ?? `${lossy}\u0000${bytes.toString('hex')}`}` : diskName ?? `${lossy}\u0000${bytes.toString('hex')}`;
      const shown = dir ? `${dir}/${lossy}` : lossy;
      if (diskName !== null && diskName.startsWith(DOWNLOAD_TEMP_PREFIX)) {
        await staleTemp(abs, diskName, shown, opts.removeStaleTemps ?? true, staleTemps);
        continue;
      }
      if (diskName !== null && isIgnored(diskName)) continue;
      let st;
      try {
        st = await lstat(diskName !== null ? join(abs, diskName) : Buffer.concat([Buffer.from(`${abs}/`), bytes]));
      } catch {
        continue; // removed while we looked: the next scan sees it as gone
      }
      if (!st.isFile() && !st.isDirectory()) {
        problem(shown, 'unsupported-name', st.isSymbolicLink() ? 'symbolic links are not synced (nor what they point to)' : 'only files and folders are synced');
        continue;
      }
      const name = diskName === null ? '' : diskName.normalize('NFC');
      const why = diskName === null ? 'its name is not valid UTF-8, so the server cannot store it; rename it to sync it' : refusedName(diskName);
      here.push({ diskPath, shown, name: why ? `\u0000${why}` : name, parentKey: dir, kind: st.isDirectory() ? 'folder' : 'file', dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, nfc: diskName === name });
    }
    // Names equal after normalization: one keeps the name (the one synced before, else the NFC spelling), the others are reported.
    const groups = new Map<string, (Found & { nfc: boolean })[]>();
    for (const f of here) if (!f.name.startsWith('\u0000')) groups.set(f.name, [...(groups.get(f.name) ?? []), f]);
    for (const group of groups.values()) {
      if (group.length < 2) continue;
      const known = (f: Found) => byInode.has(`${f.dev}:${f.ino}`);
      group.sort((a, b) => Number(known(b)) - Number(known(a)) || Number(b.nfc) - Number(a.nfc) || (a.diskPath < b.diskPath ? -1 : 1));
      const keeper = group[0];
      for (const f of group.slice(1)) {
        f.name = `\u0000another item in this folder (${JSON.stringify(keeper.shown.split('/').pop())}) has the same name in another Unicode form (NFC/NFD); the server would hold them as one name. Rename one of them`;
      }
    }
    here.sort((a, b) => (a.diskPath < b.diskPath ? -1 : a.diskPath > b.diskPath ? 1 : 0));
    for (const f of here) {
      found.push(f);
      if (f.kind === 'folder' && !f.name.startsWith('\u0000')) queue.push(f.diskPath);
    }
  }

  // 2. Identity: by inode first, then by place (a file saved over another).
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
      problem(f.shown, 'unsupported-name', `not synced: ${f.name.slice(1)}`);
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
          hash = (await hashFile(join(folder, f.diskPath), f.size)).hash;
        } catch (e) {
          problem(f.diskPath, 'unreadable', `cannot read this file (${errText(e)}); ${base.nodes.has(id) ? 'the synced version is left as it is' : 'it is not uploaded'} until it can be read`);
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
  return { tree, entries, problems, staleTemps };
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The name as a string, or null when its bytes are not UTF-8. */
function decodeName(bytes: Buffer): string | null {
  try {
    return UTF8.decode(bytes);
  } catch {
    return null;
  }
}

/** Why the server would refuse this name (its own words), or null. */
function refusedName(diskName: string): string | null {
  try {
    normalizeName(diskName);
    return null;
  } catch (e) {
    return `the server does not accept this name: ${(e as Error).message} Rename it to sync it`;
  }
}

function errText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code ?? (e as Error).message;
}

/** A download temp file: reported and removed when nothing has written to it for STALE_TEMP_MS. */
async function staleTemp(dir: string, name: string, shown: string, remove: boolean, out: string[]): Promise<void> {
  const path = join(dir, name);
  const st = await lstat(path).catch(() => null);
  // File times are wall-clock times: compare with the real clock, not the run's (possibly injected) one.
  if (!st || !st.isFile() || Date.now() - st.mtimeMs < STALE_TEMP_MS) return;
  out.push(shown);
  if (remove) await unlink(path).catch(() => {});
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
