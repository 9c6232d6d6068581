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
 * was, so the planner never mistakes it for a deletion. A folder in which
 * an entry cannot be looked at (stat fails for another reason than "it just
 * went away") counts as a folder that cannot be listed.
 *
 * Every run looks at every entry: the folder is listed and every item
 * stat'ed (inode, size, mtime), so a change made while no client ran is
 * always found; only a file's content hash is reused, while its inode, size
 * and mtime are what the index recorded. The walk (walkFolder) uses the
 * synchronous file calls (a stat is a few microseconds; a promise per stat
 * through the thread pool cost ~8x more CPU), handing the event loop back
 * every few milliseconds. A walk that finds the folder exactly as the base
 * (walkMatchesIndex: the digest of the last such walk, else one joined
 * query) needs no tree at all; otherwise scanFolder builds the local tree
 * from the same walk, reading each index table once.
 *
 * Names: the server stores names in Unicode NFC; a name on disk in another
 * form (macOS writes NFD) is the same item. Two names in one folder that
 * differ only in their normalization would be one name on the server: the
 * one already synced (or else the one already in NFC) is synced, the other
 * is reported. A name that is not valid UTF-8 cannot be stored at all and is
 * reported too (a folder holding a name that does not decode is read again
 * as bytes, so it is never silently dropped or mistaken for a deletion).
 *
 * Leftovers: a download writes to a `.coffer-dl-*` file next to its target
 * and renames it into place. A crash leaves that file behind; one nothing
 * has written to for STALE_TEMP_MS is removed by the next scan (a live
 * download writes all the time and gives up after 60 s without a byte, so
 * the age check never pulls a file from under a download another process —
 * `coffer sync --watch` while `coffer status` runs — is making right now).
 */
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, statSync, type Stats } from 'node:fs';
import { lstat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { nameProblem, normalizeName } from '@coffer/protocol/names.ts';
import type { BaseStamps, LocalFileRow, Problem, SyncIndex } from '../index/sync-index.ts';
import { childrenIndex, type Node, type Tree } from '../reconciler/tree.ts';
import { hashFile } from './hash-file.ts';
import { DOWNLOAD_TEMP_PREFIX, isIgnored, ROOT_MARKER } from './ignore.ts';

/** A download temp file untouched this long is a crash's leftover. */
export const STALE_TEMP_MS = 60 * 60 * 1000;
/** The walk hands the event loop back after this long (a `--watch` process keeps answering). */
const YIELD_MS = 20;

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
  /**
   * What the index's `local_files` should learn from this scan: the rows of items whose inode, size,
   * mtime or hash differ from the stored row (or that have none), and the ids of stored rows of items
   * that are in neither the folder nor the tree any more (a freed inode handed to a new file must not
   * make it a deleted item).
   */
  rowChanges: { put: LocalFileRow[]; drop: string[] };
}

/** The folder as the file system said it is (walkFolder), before identities are known. */
export interface FolderWalk {
  found: Found[];
  problems: Problem[];
  unreadableDirs: string[];
  staleTemps: string[];
  /** Two names in a folder were equal after normalization (the walk decided who keeps the name). */
  nfcGroups: boolean;
}

export class FolderMissingError extends Error {
  constructor(folder: string) {
    super(`The sync folder ${folder} is missing or is not the folder this account was linked to (no ${ROOT_MARKER}); is a disk unmounted? Nothing was synced.`);
    this.name = 'FolderMissingError';
  }
}

export interface Found {
  /** The path as the file system spells it (a name that is not UTF-8 gets a unique placeholder). */
  diskPath: string;
  /** For messages: the path with undecodable bytes shown as U+FFFD. */
  shown: string;
  /** NFC; or, for an item that cannot be synced, "\u0000" and why. */
  name: string;
  parentKey: string;
  kind: 'file' | 'folder';
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  /** The name on disk is already NFC. */
  nfc: boolean;
  /** Its id, once known. */
  id: string;
  /** The index's row of the same inode, when identity came from it. */
  row: LocalFileRow | undefined;
}

/**
 * What the folder holds, as the file system says (phase 1 of a scan): every entry with its inode, size
 * and mtime, breadth first, each folder's entries in disk-path order; the problems met; folders that
 * could not be listed; download leftovers. `known` tells which inodes the index knows (only consulted
 * when two names in a folder are equal after normalization: the known one keeps the name).
 */
export async function walkFolder(folder: string, known: (dev: number, ino: number) => boolean, now = Date.now(), opts: ScanOptions = {}): Promise<FolderWalk> {
  try {
    statSync(join(folder, ROOT_MARKER));
  } catch {
    throw new FolderMissingError(folder);
  }
  const problems: Problem[] = [];
  const problem = (path: string, kind: Problem['kind'], message: string) => problems.push({ path, kind, message, at: now });
  const staleTemps: string[] = [];
  let nfcGroups = false;
  const found: Found[] = [];
  const unreadableDirs: string[] = [];
  const dirs: string[] = [''];
  let lastYield = performance.now();
  for (let d = 0; d < dirs.length; d++) {
    if (performance.now() - lastYield > YIELD_MS) {
      await new Promise((r) => setImmediate(r));
      lastYield = performance.now();
    }
    const dir = dirs[d];
    const abs = dir ? join(folder, dir) : folder;
    const here: Found[] = [];
    const temps: [string, string][] = [];
    let failed: unknown = null;
    /** One entry; false when the folder must count as unreadable. */
    const visit = (diskName: string | null, bytes: Buffer | null): boolean => {
      let diskPath: string;
      let shown: string;
      if (diskName !== null) {
        diskPath = shown = dir ? `${dir}/${diskName}` : diskName;
        if (diskName.startsWith(DOWNLOAD_TEMP_PREFIX)) { temps.push([diskName, shown]); return true; }
        if (isIgnored(diskName)) return true;
      } else {
        const lossy = bytes!.toString('utf8');
        const placeholder = `${lossy}\u0000${bytes!.toString('hex')}`;
        diskPath = dir ? `${dir}/${placeholder}` : placeholder;
        shown = dir ? `${dir}/${lossy}` : lossy;
      }
      let st: Stats | undefined;
      try {
        st = lstatSync(diskName !== null ? `${abs}/${diskName}` : Buffer.concat([Buffer.from(`${abs}/`), bytes!]), { throwIfNoEntry: false });
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOTDIR') return true; // the folder was replaced while we looked: the next scan sees it
        failed = e;
        return false;
      }
      if (!st) return true; // removed while we looked: the next scan sees it as gone
      const isDir = st.isDirectory();
      if (!isDir && !st.isFile()) {
        problem(shown, 'unsupported-name', st.isSymbolicLink() ? 'symbolic links are not synced (nor what they point to)' : 'only files and folders are synced');
        return true;
      }
      let name = '\u0000its name is not valid UTF-8, so the server cannot store it; rename it to sync it';
      let nfc = false;
      if (diskName !== null) {
        const normal = diskName.normalize('NFC');
        nfc = normal === diskName;
        name = nameProblem(normal) === null ? normal : `\u0000${refusedName(diskName)}`;
      }
      here.push({ diskPath, shown, name, parentKey: dir, kind: isDir ? 'folder' : 'file', dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, nfc, id: '', row: undefined });
      return true;
    };
    try {
      const names = readdirSync(abs);
      // U+FFFD: maybe a name that is not UTF-8 (Node replaces what it cannot decode); read the folder as bytes to know.
      if (names.some((n) => n.includes('\uFFFD'))) {
        for (const bytes of readdirSync(abs, { encoding: 'buffer' })) if (!visit(decodeName(bytes), bytes)) break;
      } else {
        for (const n of names) if (!visit(n, null)) break;
      }
    } catch (e) {
      failed = e;
    }
    if (failed !== null) {
      problem(dir, 'unreadable', `cannot list this folder (${errText(failed)}); what was synced in it is left as it is`);
      unreadableDirs.push(dir);
      continue;
    }
    for (const [name, shown] of temps) await staleTemp(abs, name, shown, opts.removeStaleTemps ?? true, staleTemps);
    // Names equal after normalization (only possible when one is not NFC): one keeps the name (the one synced before, else the NFC spelling), the others are reported.
    if (here.some((f) => !f.nfc && !f.name.startsWith('\u0000'))) {
      nfcGroups = true;
      const groups = new Map<string, Found[]>();
      for (const f of here) {
        if (f.name.startsWith('\u0000')) continue;
        const g = groups.get(f.name);
        if (g) g.push(f);
        else groups.set(f.name, [f]);
      }
      for (const group of groups.values()) {
        if (group.length < 2) continue;
        const isKnown = (f: Found) => known(f.dev, f.ino);
        group.sort((a, b) => Number(isKnown(b)) - Number(isKnown(a)) || Number(b.nfc) - Number(a.nfc) || (a.diskPath < b.diskPath ? -1 : 1));
        const keeper = group[0];
        for (const f of group.slice(1)) {
          f.name = `\u0000another item in this folder (${JSON.stringify(keeper.shown.split('/').pop())}) has the same name in another Unicode form (NFC/NFD); the server would hold them as one name. Rename one of them`;
        }
      }
    }
    here.sort((a, b) => (a.diskPath < b.diskPath ? -1 : a.diskPath > b.diskPath ? 1 : 0));
    for (const f of here) {
      found.push(f);
      if (f.kind === 'folder' && !f.name.startsWith('\u0000')) dirs.push(f.diskPath);
    }
  }
  return { found, problems, unreadableDirs, staleTemps, nfcGroups };
}

/**
 * Builds the local tree. `walked`: the folder as a walk just found it (see walkFolder), to use instead
 * of walking again.
 */
export async function scanFolder(folder: string, rootId: string, index: SyncIndex, base: Tree, now = Date.now(), opts: ScanOptions = {}, walked?: FolderWalk): Promise<ScanResult> {
  const rows = index.localFiles();
  // dev → ino → row: no key string per lookup.
  const byInode = new Map<number, Map<number, LocalFileRow>>();
  for (const r of rows) {
    let m = byInode.get(r.dev);
    if (!m) byInode.set(r.dev, (m = new Map()));
    m.set(r.ino, r);
  }
  const rowOfInode = (dev: number, ino: number) => byInode.get(dev)?.get(ino);
  // A walk that had to decide between names equal after normalization decided with what it knew then: walk again.
  const { found, problems, unreadableDirs, staleTemps } = walked && !walked.nfcGroups ? walked : await walkFolder(folder, (dev, ino) => rowOfInode(dev, ino) !== undefined, now, opts);
  const problem = (path: string, kind: Problem['kind'], message: string) => problems.push({ path, kind, message, at: now });
  const rootKey = '';

  // 2. Identity: by inode first, then by place (a file saved over another).
  const folderIds = new Map<string, string>([[rootKey, rootId]]);
  const claimed = new Set<string>([rootId]);
  let unmatched = 0;
  for (const f of found) {
    const row = rowOfInode(f.dev, f.ino);
    const known = row && base.nodes.get(row.id);
    if (row && !claimed.has(row.id) && (!known || known.kind === f.kind)) {
      f.id = row.id;
      f.row = row;
      claimed.add(row.id);
    } else unmatched++;
  }
  let rowById: Map<string, LocalFileRow> | null = null;
  if (unmatched > 0) {
    const nfcPaths = new Map<Found, string>();
    for (const f of found) if (!f.id) nfcPaths.set(f, f.diskPath.split('/').map((s) => s.normalize('NFC')).join('/'));
    // Only base items with one of these names can be at one of these paths.
    const basePaths = basePathIndex(base, new Set([...nfcPaths.values()].map((p) => p.slice(p.lastIndexOf('/') + 1))));
    const ids = new Set<string>();
    for (const [f, path] of nfcPaths) {
      const b = basePaths.get(path);
      const id = b && b.kind === f.kind && !claimed.has(b.id) ? b.id : `local:${f.dev}:${f.ino}`;
      f.id = id;
      claimed.add(id);
      ids.add(id);
    }
    rowById = new Map();
    for (const r of rows) if (ids.has(r.id)) rowById.set(r.id, r);
  }
  for (const f of found) if (f.kind === 'folder') folderIds.set(f.diskPath, f.id);

  // 3. Nodes, with content hashes (reused while size, mtime and inode are unchanged).
  const entries = new Map<string, LocalEntry>();
  const nodes = new Map<string, Node>([[rootId, { id: rootId, parentId: null, name: '', kind: 'folder', hash: null, size: 0 }]]);
  /** The first node given an id stays. */
  const add = (n: Node) => { if (!nodes.has(n.id)) nodes.set(n.id, n); };
  const keepAsBase = (id: string) => { const b = base.nodes.get(id); if (b) add(b); return b !== undefined; };
  const put: LocalFileRow[] = [];
  const skipped = new Set<string>();
  let kids: Map<string, Node[]> | null = null;
  const keepSubtree = (id: string) => {
    kids ??= childrenIndex(base);
    const stack = [...(kids.get(id) ?? [])];
    while (stack.length) {
      const n = stack.pop()!;
      add(n);
      stack.push(...(kids.get(n.id) ?? []));
    }
  };
  for (const f of found) {
    const id = f.id;
    const parentId = folderIds.get(f.parentKey);
    if (parentId === undefined || skipped.has(f.parentKey)) { skipped.add(f.diskPath); continue; }
    if (f.name.startsWith('\u0000')) {
      problem(f.shown, 'unsupported-name', `not synced: ${f.name.slice(1)}`);
      skipped.add(f.diskPath);
      if (keepAsBase(id)) keepSubtree(id);
      continue;
    }
    const row = f.row ?? rowById?.get(id);
    let hash: string | null = null;
    if (f.kind === 'file') {
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
    const size = f.kind === 'file' ? f.size : 0;
    const node: Node = { id, parentId, name: f.name, kind: f.kind, hash, size };
    add(node);
    entries.set(id, { id, diskPath: f.diskPath, node, dev: f.dev, ino: f.ino, size: f.size, mtimeMs: f.mtimeMs });
    if (!row || row.id !== id || row.dev !== f.dev || row.ino !== f.ino || row.size !== f.size || row.mtimeMs !== f.mtimeMs || row.hash !== hash) {
      put.push({ id, dev: f.dev, ino: f.ino, size: f.size, mtimeMs: f.mtimeMs, hash });
    }
  }
  // A folder that could not be listed keeps its synced contents as they were.
  for (const dir of unreadableDirs) {
    const id = dir === rootKey ? rootId : folderIds.get(dir);
    if (id) keepSubtree(id);
  }
  const drop: string[] = [];
  for (const r of rows) if (!nodes.has(r.id)) drop.push(r.id);
  return { tree: { rootId, nodes }, entries, problems, staleTemps, rowChanges: { put, drop } };
}

/**
 * A digest of a walk: SHA-256 over every item in walk order (breadth first, each folder's entries in
 * disk-path order, so the same folder always gives the same sequence): each path, length-prefixed, then
 * each item's kind, device and inode and, for a file, size and mtime, as raw doubles (no number to
 * format). Two walks with the same digest found the same items at the same paths with the same stamps.
 */
export function walkDigest(walk: FolderWalk): string {
  const h = createHash('sha256');
  const stamps = new Float64Array(walk.found.length * 5);
  let chunk = '';
  let at = 0;
  for (const f of walk.found) {
    chunk += `${f.diskPath.length}:${f.diskPath}`;
    if (chunk.length > 1 << 16) { h.update(chunk); chunk = ''; }
    const file = f.kind === 'file';
    stamps[at++] = file ? 1 : 2;
    stamps[at++] = f.dev;
    stamps[at++] = f.ino;
    stamps[at++] = file ? f.size : 0;
    stamps[at++] = file ? f.mtimeMs : 0;
  }
  return h.update(chunk).update(new Uint8Array(stamps.buffer)).digest('hex');
}

/**
 * Whether the walked folder is the base. First by the digest the index keeps of the last walk that was
 * (SyncIndex: any write to the base or to the local rows forgets it, so while it is there, a walk with
 * the same digest is that folder again), else by comparing with the index (walkIsBase), after which the
 * digest is kept when `remember` (a sync that ends in agreement).
 */
export function walkMatchesIndex(index: SyncIndex, walk: FolderWalk, rootId: string, remember: boolean): boolean {
  if (walk.problems.length || walk.unreadableDirs.length) return false;
  const digest = walkDigest(walk);
  if (index.walkDigest() === digest) return true;
  // As many items as the base holds, or it cannot be the base (cheaper to count than to compare).
  if (walk.found.length !== index.baseItemCount(rootId) || !walkIsBase(walk, rootId, index.baseStamps(rootId))) return false;
  if (remember) index.setWalkDigest(digest);
  return true;
}

/** Which inodes the index knows (what walkFolder asks when names collide after normalization), read only if asked. */
export function knownInodes(index: SyncIndex): (dev: number, ino: number) => boolean {
  let byDev: Map<number, Set<number>> | null = null;
  return (dev, ino) => {
    if (!byDev) {
      byDev = new Map();
      for (const r of index.localFiles()) {
        let set = byDev.get(r.dev);
        if (!set) byDev.set(r.dev, (set = new Set()));
        set.add(r.ino);
      }
    }
    return byDev.get(dev)?.has(ino) ?? false;
  };
}

/**
 * Whether the folder, as walked, is exactly the base — every item where the base has it, under the same
 * name, and each file with the size and mtime its `local_files` row had when that row's hash was the
 * base's — and nothing else: what scanFolder would then build is the base itself, so a run with nothing
 * to do is known to be one without building any tree. The same identity rule as scanFolder's (the inode
 * the index remembers, of the same kind), the same hash-reuse rule (inode, size and mtime unchanged).
 * Anything else (a problem, an unknown inode, a moved, changed or missing item): false, and the caller
 * scans for real.
 */
export function walkIsBase(walk: FolderWalk, rootId: string, stamps: BaseStamps): boolean {
  if (walk.problems.length || walk.unreadableDirs.length) return false;
  const dirIds = new Map<string, string>([['', rootId]]);
  const claimed = new Set<string>();
  for (const f of walk.found) {
    const s = stamps.byInode.get(f.dev)?.get(f.ino);
    if (!s || claimed.has(s[0])) return false;
    const folder = f.kind === 'folder';
    if (s[3] !== (folder ? 1 : 0) || s[2] !== f.name || s[1] !== dirIds.get(f.parentKey) || s[8] !== 1) return false;
    if (!folder && (s[6] !== f.size || s[7] !== f.mtimeMs)) return false;
    claimed.add(s[0]);
    if (folder) dirIds.set(f.diskPath, s[0]);
  }
  return claimed.size === stamps.items;
}

/** Each base item named one of `names`, by its path ('' for one that is detached); a later item with the same path wins. */
function basePathIndex(base: Tree, names: Set<string>): Map<string, Node> {
  const memo = new Map<string, string | null>([[base.rootId, '']]);
  const pathOfId = (id: string): string | null => {
    const chain: Node[] = [];
    let cur = base.nodes.get(id);
    let path: string | null = null;
    for (;;) {
      if (!cur) break;
      const known = memo.get(cur.id);
      if (known !== undefined) { path = known; break; }
      if (chain.length > base.nodes.size || cur.parentId === null) break; // a cycle, or a second root: no path
      chain.push(cur);
      cur = base.nodes.get(cur.parentId);
    }
    for (let i = chain.length - 1; i >= 0; i--) {
      path = path === null ? null : path === '' ? chain[i].name : `${path}/${chain[i].name}`;
      memo.set(chain[i].id, path);
    }
    return path;
  };
  const out = new Map<string, Node>();
  for (const n of base.nodes.values()) if (n.id !== base.rootId && names.has(n.name)) out.set(pathOfId(n.id) ?? '', n);
  return out;
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

/** Why the server would refuse this name (its own words). */
function refusedName(diskName: string): string {
  try {
    normalizeName(diskName);
    return 'the server does not accept this name';
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
