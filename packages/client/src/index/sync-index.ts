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
 * - `meta`: server identity (instance id, root id), feed cursor;
 * - `problems`: files that could not be synced and why (shown by `status`);
 * - `conflicts`: the conflict copies this client made, by item id, until
 *   they are gone (`status` lists the ones still there, across runs).
 *
 * better-sqlite3 is synchronous: a client's index calls are small, and a
 * transaction per sync step keeps the state consistent across a crash.
 */
import Database from 'better-sqlite3';
import type { Node } from '../reconciler/tree.ts';

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

type Row = { id: string; parent_id: string | null; name: string; kind: 'file' | 'folder'; hash: string | null; size: number };
const toNode = (r: Row): Node => ({ id: r.id, parentId: r.parent_id, name: r.name, kind: r.kind, hash: r.hash, size: r.size });

export class SyncIndex {
  readonly db: Database.Database;
  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    // WAL + NORMAL: a commit survives a crash of the client; a power cut may lose the last few, which only
    // looks like "both sides made the same change" to the next run (the planner settles it; see record.ts).
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(SCHEMA);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  getMeta(key: string): string | null {
    const r = this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
    return r?.value ?? null;
  }

  setMeta(key: string, value: string | null): void {
    if (value === null) this.db.prepare('DELETE FROM meta WHERE key = ?').run(key);
    else this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, value);
  }

  // --- remote tree -------------------------------------------------------
  remoteNodes(): RemoteNode[] {
    return (this.db.prepare('SELECT * FROM remote').all() as (Row & { etag: string | null; rev: number })[]).map((r) => ({ ...toNode(r), etag: r.etag, rev: r.rev }));
  }
  remoteNode(id: string): RemoteNode | undefined {
    const r = this.db.prepare('SELECT * FROM remote WHERE id = ?').get(id) as (Row & { etag: string | null; rev: number }) | undefined;
    return r ? { ...toNode(r), etag: r.etag, rev: r.rev } : undefined;
  }
  /** Upserts a remote item unless the index already has a later revision of it. */
  putRemote(n: RemoteNode): void {
    this.db.prepare(`INSERT INTO remote (id, parent_id, name, kind, hash, size, etag, rev) VALUES (@id, @parentId, @name, @kind, @hash, @size, @etag, @rev)
      ON CONFLICT (id) DO UPDATE SET parent_id = excluded.parent_id, name = excluded.name, kind = excluded.kind, hash = excluded.hash,
        size = excluded.size, etag = excluded.etag, rev = excluded.rev WHERE excluded.rev >= remote.rev`).run(n);
  }
  deleteRemote(id: string): void {
    this.db.prepare('DELETE FROM remote WHERE id = ?').run(id);
  }
  clearRemote(): void {
    this.db.prepare('DELETE FROM remote').run();
  }

  // --- base ----------------------------------------------------------------
  baseNodes(): Node[] {
    return (this.db.prepare('SELECT * FROM base').all() as Row[]).map(toNode);
  }
  putBase(n: Node): void {
    this.db.prepare(`INSERT INTO base (id, parent_id, name, kind, hash, size) VALUES (@id, @parentId, @name, @kind, @hash, @size)
      ON CONFLICT (id) DO UPDATE SET parent_id = excluded.parent_id, name = excluded.name, kind = excluded.kind, hash = excluded.hash, size = excluded.size`).run(n);
  }
  deleteBase(id: string): void {
    this.db.prepare('DELETE FROM base WHERE id = ?').run(id);
  }

  // --- local files -----------------------------------------------------------
  localFiles(): LocalFileRow[] {
    return (this.db.prepare('SELECT id, dev, ino, size, mtime_ms AS mtimeMs, hash FROM local_files').all() as LocalFileRow[]);
  }
  putLocalFile(r: LocalFileRow): void {
    this.db.prepare('DELETE FROM local_files WHERE dev = ? AND ino = ? AND id <> ?').run(r.dev, r.ino, r.id);
    this.db.prepare(`INSERT INTO local_files (id, dev, ino, size, mtime_ms, hash) VALUES (@id, @dev, @ino, @size, @mtimeMs, @hash)
      ON CONFLICT (id) DO UPDATE SET dev = excluded.dev, ino = excluded.ino, size = excluded.size, mtime_ms = excluded.mtime_ms, hash = excluded.hash`).run(r);
  }
  deleteLocalFile(id: string): void {
    this.db.prepare('DELETE FROM local_files WHERE id = ?').run(id);
  }
  /** A local item got another id (its upload returned the server's id, or it was recognized as a remote item). */
  rekeyLocal(from: string, to: string): void {
    this.db.prepare('DELETE FROM local_files WHERE id = ?').run(to);
    this.db.prepare('UPDATE local_files SET id = ? WHERE id = ?').run(to, from);
    this.db.prepare('UPDATE OR REPLACE conflicts SET id = ? WHERE id = ?').run(to, from);
  }

  // --- problems ------------------------------------------------------------------
  problems(): Problem[] {
    return this.db.prepare('SELECT path, kind, message, at FROM problems ORDER BY path').all() as Problem[];
  }
  setProblems(list: Problem[]): void {
    this.transaction(() => {
      this.db.prepare('DELETE FROM problems').run();
      const ins = this.db.prepare('INSERT OR REPLACE INTO problems (path, kind, message, at) VALUES (@path, @kind, @message, @at)');
      for (const p of list) ins.run(p);
    });
  }

  // --- conflict copies -------------------------------------------------------------
  conflicts(): ConflictCopyRow[] {
    return this.db.prepare('SELECT id, path, original, at FROM conflicts ORDER BY path').all() as ConflictCopyRow[];
  }
  putConflict(c: ConflictCopyRow): void {
    this.db.prepare(`INSERT INTO conflicts (id, path, original, at) VALUES (@id, @path, @original, @at)
      ON CONFLICT (id) DO UPDATE SET path = excluded.path, original = excluded.original, at = excluded.at`).run(c);
  }
  /** The copy is gone (deleted, or its content went elsewhere): the conflict is resolved. */
  deleteConflict(id: string): void {
    this.db.prepare('DELETE FROM conflicts WHERE id = ?').run(id);
  }
}
