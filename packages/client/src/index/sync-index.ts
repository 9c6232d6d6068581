/**
 * The client's persistent state for one account, in one SQLite file in the
 * account's state directory (never in the synced folder):
 *
 * - `remote`: the server's tree as the change feed last described it (with
 *   each item's ETag, needed for conditional writes);
 * - `base`: the last state both sides agreed on, the reconciler's merge base;
 * - `local_files`: what the scanner knows about each local file or folder
 *   (inode, size, mtime, content hash), so renames are recognized and
 *   unchanged files are not hashed again;
 * - `meta`: server identity (instance id, root id), feed cursor, the
 *   `quiet` flag (the last sync ended in agreement) and the digest of the
 *   last walk of the folder that was the base (forgotten by any write to
 *   `base` or `local_files`);
 * - `problems`: files that could not be synced and why (shown by `status`);
 * - `conflicts`: the conflict copies this client made, by item id, until
 *   they are gone (`status` lists the ones still there, across runs).
 *
 * better-sqlite3 is synchronous: a client's index calls are small, and a
 * transaction per sync step keeps the state consistent across a crash.
 * Whole tables are read only when a sync has something to plan: a run with
 * nothing to do reads the digest, or one joined query (baseStamps).
 */
import Database from 'better-sqlite3';
import type { Node, Tree } from '../reconciler/tree.ts';

export interface RemoteNode extends Node {
  etag: string | null;
  rev: number;
}

export interface LocalFileRow {
  id: string;
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  hash: string | null;
}

/**
 * A base item with what the index remembers of its local file: id, parent id, name, 1 for a folder,
 * then the local row's dev, ino, size and mtime (null without a row), and 1 when that row's hash is
 * the base's (for a folder: when the base holds no hash, as a scanned folder does not).
 */
export type BaseStamp = [id: string, parentId: string | null, name: string, folder: 0 | 1, dev: number | null, ino: number | null, size: number | null, mtimeMs: number | null, sameHash: 0 | 1];

export interface BaseStamps {
  /** Base items, the root left out. */
  items: number;
  /** Those with a local row, by dev and inode. */
  byInode: Map<number, Map<number, BaseStamp>>;
}

/** A conflict copy this client made: the local content of a file both sides changed, kept under another name. */
export interface ConflictCopyRow {
  /** The copy's item id (a local id until it is uploaded, then the server's). */
  id: string;
  /** Where the copy was put, relative to the sync folder. */
  path: string;
  /** The file both sides changed (it holds the other side's content). */
  original: string;
  at: number;
}

export interface Problem {
  path: string;
  kind: 'unreadable' | 'rejected' | 'conflict' | 'unsupported-name' | 'failed';
  message: string;
  at: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS remote (id TEXT PRIMARY KEY, parent_id TEXT, name TEXT NOT NULL, kind TEXT NOT NULL, hash TEXT, size INTEGER NOT NULL, etag TEXT, rev INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS base (id TEXT PRIMARY KEY, parent_id TEXT, name TEXT NOT NULL, kind TEXT NOT NULL, hash TEXT, size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS local_files (id TEXT PRIMARY KEY, dev INTEGER NOT NULL, ino INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ms REAL NOT NULL, hash TEXT);
CREATE INDEX IF NOT EXISTS local_files_inode ON local_files (dev, ino);
CREATE TABLE IF NOT EXISTS problems (path TEXT NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (path, kind));
CREATE TABLE IF NOT EXISTS conflicts (id TEXT PRIMARY KEY, path TEXT NOT NULL, original TEXT NOT NULL, at INTEGER NOT NULL);
`;

const WALK_DIGEST = 'walk_digest';

type Row = [id: string, parentId: string | null, name: string, kind: 'file' | 'folder', hash: string | null, size: number];
type RemoteRow = [...Row, etag: string | null, rev: number];
const NODE_COLUMNS = 'id, parent_id, name, kind, hash, size';
const toNode = (r: Row): Node => ({ id: r[0], parentId: r[1], name: r[2], kind: r[3], hash: r[4], size: r[5] });
const toRemote = (r: RemoteRow): RemoteNode => ({ id: r[0], parentId: r[1], name: r[2], kind: r[3], hash: r[4], size: r[5], etag: r[6], rev: r[7] });

/**
 * Statements are prepared once per connection (preparing costs more than running a small one), and
 * whole tables are read as raw rows into plain objects (the per-row objects better-sqlite3 builds
 * cost several times more at 100,000 rows).
 */
export class SyncIndex {
  readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();
  /** `readonly`: a second connection that can never write (a dry run's view of the index). */
  constructor(file: string, opts: { readonly?: boolean } = {}) {
    this.db = new Database(file, { readonly: !!opts.readonly, fileMustExist: !!opts.readonly });
    if (opts.readonly) return;
    this.db.pragma('journal_mode = WAL');
    // WAL + NORMAL: a commit survives a crash of the client; a power cut may lose the last few, which only
    // looks like "both sides made the same change" to the next run (the planner settles it; see record.ts).
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(SCHEMA);
  }

  private stmt(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (!s) this.statements.set(sql, (s = this.db.prepare(sql)));
    return s;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  /**
   * Runs `fn` (synchronous) with its writes committed together, as one commit instead of one per
   * statement. Unlike `transaction`, what `fn` wrote before it threw is kept, just as if each write had
   * been committed on its own: use it to group records of steps already done, never for all-or-nothing.
   */
  grouped<T>(fn: () => T): T {
    if (this.db.inTransaction) return fn();
    this.db.exec('BEGIN');
    try {
      return fn();
    } finally {
      if (this.db.inTransaction) this.db.exec('COMMIT');
    }
  }

  getMeta(key: string): string | null {
    const r = this.stmt('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
    return r?.value ?? null;
  }

  setMeta(key: string, value: string | null): void {
    if (value === null) this.stmt('DELETE FROM meta WHERE key = ?').run(key);
    else this.stmt('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, value);
  }

  // --- the last walk that was the base -----------------------------------------
  /** The digest of the last walk of the folder found to be the base (scan-folder.ts, walkMatchesIndex), or null. */
  walkDigest(): string | null {
    return this.getMeta(WALK_DIGEST);
  }
  setWalkDigest(digest: string): void {
    this.setMeta(WALK_DIGEST, digest);
  }
  /** Every write to the base or the local rows forgets the digest: it vouches for the folder only as they were. */
  private forgetWalkDigest(): void {
    this.stmt('DELETE FROM meta WHERE key = ?').run(WALK_DIGEST);
  }

  // --- remote tree -------------------------------------------------------
  /** The remote tree, keyed by id (what the planner reads). */
  remoteTree(rootId: string): Tree<RemoteNode> {
    const nodes = new Map<string, RemoteNode>();
    for (const r of this.stmt(`SELECT ${NODE_COLUMNS}, etag, rev FROM remote`).raw(true).all() as RemoteRow[]) nodes.set(r[0], toRemote(r));
    return { rootId, nodes };
  }
  remoteNode(id: string): RemoteNode | undefined {
    const r = this.stmt(`SELECT ${NODE_COLUMNS}, etag, rev FROM remote WHERE id = ?`).raw(true).get(id) as RemoteRow | undefined;
    return r ? toRemote(r) : undefined;
  }
  /** Upserts a remote item unless the index already has a later revision of it. */
  putRemote(n: RemoteNode): void {
    this.stmt(`INSERT INTO remote (id, parent_id, name, kind, hash, size, etag, rev) VALUES (@id, @parentId, @name, @kind, @hash, @size, @etag, @rev)
      ON CONFLICT (id) DO UPDATE SET parent_id = excluded.parent_id, name = excluded.name, kind = excluded.kind, hash = excluded.hash,
        size = excluded.size, etag = excluded.etag, rev = excluded.rev WHERE excluded.rev >= remote.rev`).run(n);
  }
  deleteRemote(id: string): void {
    this.stmt('DELETE FROM remote WHERE id = ?').run(id);
  }
  clearRemote(): void {
    this.stmt('DELETE FROM remote').run();
  }

  // --- base ----------------------------------------------------------------
  /** The base as a tree; the root is there even when the table does not hold it. */
  baseTree(rootId: string): Tree {
    const nodes = new Map<string, Node>([[rootId, { id: rootId, parentId: null, name: '', kind: 'folder', hash: null, size: 0 }]]);
    for (const r of this.stmt(`SELECT ${NODE_COLUMNS} FROM base`).raw(true).all() as Row[]) nodes.set(r[0], toNode(r));
    return { rootId, nodes };
  }
  /** The base joined with the local rows: enough to tell that the folder is the base (scan-folder.ts, walkIsBase) without building either tree. */
  baseStamps(rootId: string): BaseStamps {
    const rows = this.stmt(`SELECT b.id, b.parent_id, b.name, b.kind = 'folder', l.dev, l.ino, l.size, l.mtime_ms,
        CASE WHEN b.kind = 'folder' THEN b.hash IS NULL ELSE l.hash IS NOT NULL AND l.hash = b.hash END
      FROM base b LEFT JOIN local_files l ON l.id = b.id WHERE b.id <> ?`).raw(true).all(rootId) as BaseStamp[];
    const byInode = new Map<number, Map<number, BaseStamp>>();
    for (const r of rows) {
      if (r[4] === null) continue;
      let m = byInode.get(r[4]);
      if (!m) byInode.set(r[4], (m = new Map()));
      m.set(r[5]!, r);
    }
    return { items: rows.length, byInode };
  }
  /** How many items the base holds, the root left out. */
  baseItemCount(rootId: string): number {
    return this.stmt('SELECT count(*) FROM base WHERE id <> ?').pluck().get(rootId) as number;
  }
  /** Whether the remote tree is the base (the same items, places and contents), counted by SQLite without reading either. */
  remoteIsBase(rootId: string): boolean {
    const count = (sql: string) => this.stmt(sql).pluck().get(rootId) as number;
    const root = this.stmt('SELECT parent_id, name, kind, hash FROM remote WHERE id = ?').get(rootId) as { parent_id: string | null; name: string; kind: string; hash: string | null } | undefined;
    const baseRoot = this.stmt('SELECT parent_id, name, kind, hash FROM base WHERE id = ?').get(rootId) as typeof root;
    const rootSame = (r: typeof root) => r !== undefined && r.parent_id === null && r.name === '' && r.kind === 'folder' && r.hash === null;
    if (!rootSame(root) || (baseRoot !== undefined && !rootSame(baseRoot))) return false;
    const items = count('SELECT count(*) FROM base WHERE id <> ?');
    return items === count('SELECT count(*) FROM remote WHERE id <> ?')
      && items === count(`SELECT count(*) FROM base b JOIN remote r ON r.id = b.id WHERE b.id <> ?
        AND r.parent_id IS b.parent_id AND r.name = b.name AND r.kind = b.kind AND r.hash IS b.hash`);
  }
  putBase(n: Node): void {
    this.forgetWalkDigest();
    this.stmt(`INSERT INTO base (id, parent_id, name, kind, hash, size) VALUES (@id, @parentId, @name, @kind, @hash, @size)
      ON CONFLICT (id) DO UPDATE SET parent_id = excluded.parent_id, name = excluded.name, kind = excluded.kind, hash = excluded.hash, size = excluded.size`).run(n);
  }
  deleteBase(id: string): void {
    this.forgetWalkDigest();
    this.stmt('DELETE FROM base WHERE id = ?').run(id);
  }

  // --- local files -----------------------------------------------------------
  localFiles(): LocalFileRow[] {
    return (this.stmt('SELECT id, dev, ino, size, mtime_ms, hash FROM local_files').raw(true).all() as [string, number, number, number, number, string | null][])
      .map((r) => ({ id: r[0], dev: r[1], ino: r[2], size: r[3], mtimeMs: r[4], hash: r[5] }));
  }
  putLocalFile(r: LocalFileRow): void {
    this.forgetWalkDigest();
    this.stmt('DELETE FROM local_files WHERE dev = ? AND ino = ? AND id <> ?').run(r.dev, r.ino, r.id);
    this.stmt(`INSERT INTO local_files (id, dev, ino, size, mtime_ms, hash) VALUES (@id, @dev, @ino, @size, @mtimeMs, @hash)
      ON CONFLICT (id) DO UPDATE SET dev = excluded.dev, ino = excluded.ino, size = excluded.size, mtime_ms = excluded.mtime_ms, hash = excluded.hash`)
      .run(r);
  }
  deleteLocalFile(id: string): void {
    this.forgetWalkDigest();
    this.stmt('DELETE FROM local_files WHERE id = ?').run(id);
  }
  /** A local item got another id (its upload returned the server's id, or it was recognized as a remote item). */
  rekeyLocal(from: string, to: string): void {
    this.forgetWalkDigest();
    this.stmt('DELETE FROM local_files WHERE id = ?').run(to);
    this.stmt('UPDATE local_files SET id = ? WHERE id = ?').run(to, from);
    this.stmt('UPDATE OR REPLACE conflicts SET id = ? WHERE id = ?').run(to, from);
  }

  // --- problems ------------------------------------------------------------------
  problems(): Problem[] {
    return this.stmt('SELECT path, kind, message, at FROM problems ORDER BY path').all() as Problem[];
  }
  setProblems(list: Problem[]): void {
    const now = this.problems();
    // Usually the same list as last time (often none): nothing to write then.
    if (now.length === list.length && now.every((p, i) => p.path === list[i].path && p.kind === list[i].kind && p.message === list[i].message && p.at === list[i].at)) return;
    this.transaction(() => {
      this.stmt('DELETE FROM problems').run();
      const ins = this.stmt('INSERT OR REPLACE INTO problems (path, kind, message, at) VALUES (@path, @kind, @message, @at)');
      for (const p of list) ins.run(p);
    });
  }

  // --- conflict copies -------------------------------------------------------------
  conflicts(): ConflictCopyRow[] {
    return this.stmt('SELECT id, path, original, at FROM conflicts ORDER BY path').all() as ConflictCopyRow[];
  }
  putConflict(c: ConflictCopyRow): void {
    this.stmt(`INSERT INTO conflicts (id, path, original, at) VALUES (@id, @path, @original, @at)
      ON CONFLICT (id) DO UPDATE SET path = excluded.path, original = excluded.original, at = excluded.at`).run(c);
  }
  /** The copy is gone (deleted, or its content went elsewhere): the conflict is resolved. */
  deleteConflict(id: string): void {
    this.stmt('DELETE FROM conflicts WHERE id = ?').run(id);
  }
}
