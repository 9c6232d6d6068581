/**
 * Carries out the planner's local steps on the sync folder. Every step
 * first checks that the disk is as the plan saw it, and skips (the next
 * round plans again) when the user changed something meanwhile:
 *
 * - a download goes to a temporary file next to its target, is verified
 *   against the content hash the server gave, flushed, and only then
 *   renamed into place — a crash never leaves a half-written file under
 *   the real name, and an existing file is replaced only if it still holds
 *   exactly the content the plan expected to replace;
 * - a move never replaces anything at the target;
 * - a delete removes a file only if its content is still the synced one
 *   (so it is safely on the server), and a folder only when empty.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { lstat, mkdir, open, rename, rmdir, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { once } from 'node:events';
import { ChunkDigester } from '@coffer/protocol/chunker.ts';
import { manifestHash } from '@coffer/protocol/content-hash.ts';
import type { Op } from '../reconciler/plan.ts';
import { hashFile } from '../scanner/hash-file.ts';
import { TEMP_PREFIX } from '../scanner/ignore.ts';
import type { LocalState } from '../sync/local-state.ts';

export type StepOutcome = { done: true } | { done: false; reason: string };
const skip = (reason: string): StepOutcome => ({ done: false, reason });
const DONE: StepOutcome = { done: true };

/** Streams a remote file's bytes. */
export type Downloader = (id: string) => Promise<{ body: AsyncIterable<Uint8Array> }>;

export interface FileStamp {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
}

/** The scan's stamp and hash of an item (a Map will do). */
export interface StampLookup {
  get(id: string): (FileStamp & { hash: string | null }) | undefined;
}

export class LocalExecutor {
  private readonly state: LocalState;
  private readonly download: Downloader;
  /** What the scan saw of each file: a file with the same stamp still has the scanned hash. */
  private readonly stamps: StampLookup;
  /** Called after each change, with the item's new stamp (or null when it is gone). */
  private readonly onChanged: (id: string, stamp: (FileStamp & { hash: string | null }) | null) => void;
  constructor(state: LocalState, download: Downloader, stamps: StampLookup,
    onChanged: (id: string, stamp: (FileStamp & { hash: string | null }) | null) => void) {
    this.state = state;
    this.download = download;
    this.stamps = stamps;
    this.onChanged = onChanged;
  }

  async run(op: Op): Promise<StepOutcome> {
    switch (op.type) {
      case 'mkdir': return this.mkdir(op.id, op.parentId, op.name);
      case 'write': return this.write(op);
      case 'move': return this.move(op.id, op.parentId, op.name);
      case 'delete': return this.remove(op);
    }
  }

  private async mkdir(id: string, parentId: string, name: string): Promise<StepOutcome> {
    const parent = this.state.absPath(parentId);
    if (parent === null) return skip('its folder is not there');
    const path = join(parent, name);
    try {
      await mkdir(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return skip('something with this name appeared');
      throw e;
    }
    this.state.set({ id, parentId, name, kind: 'folder', hash: null, size: 0 });
    const st = await stat(path);
    this.onChanged(id, { dev: st.dev, ino: st.ino, size: 0, mtimeMs: st.mtimeMs, hash: null });
    return DONE;
  }

  private async write(op: Extract<Op, { type: 'write' }>): Promise<StepOutcome> {
    const existing = this.state.has(op.id);
    const target = existing ? this.state.absPath(op.id) : (() => { const p = this.state.absPath(op.parentId); return p === null ? null : join(p, op.name); })();
    if (target === null) return skip('its folder is not there');
    const temp = join(dirname(target), `${TEMP_PREFIX}dl-${randomBytes(6).toString('hex')}`);
    try {
      const size = await this.fetchVerified(op.id, temp, op.hash);
      // The check right before the rename: replace only what the plan expected to replace.
      const why = await this.unexpected(op.id, target, existing ? op.expectHash : null);
      if (why) {
        await unlink(temp).catch(() => {});
        return skip(why);
      }
      await rename(temp, target);
      const st = await stat(target);
      if (existing) this.state.setContent(op.id, op.hash, size);
      else this.state.set({ id: op.id, parentId: op.parentId, name: op.name, kind: 'file', hash: op.hash, size });
      this.onChanged(op.id, { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, hash: op.hash });
      return DONE;
    } catch (e) {
      await unlink(temp).catch(() => {});
      // The server's file changed or went away after the plan (another device): plan again, as remote steps do.
      const code = (e as { code?: string }).code;
      if (code === 'NOT_FOUND' || code === 'VERSION_CONFLICT' || code === 'CONTENT_CHANGED') return skip(`the file changed on the server meanwhile (${code})`);
      // The user moved or deleted its folder meanwhile.
      if (code === 'ENOENT' || code === 'ENOTDIR') return skip('its folder was moved or deleted meanwhile');
      throw e;
    }
  }

  /** Downloads into `temp`, hashing as it goes; throws unless the bytes have the expected content hash. Returns the size. */
  private async fetchVerified(id: string, temp: string, expectHash: string): Promise<number> {
    const { body } = await this.download(id);
    const out = createWriteStream(temp, { flags: 'wx', mode: 0o644 });
    const digester = new ChunkDigester();
    const hashes: string[] = [];
    let size = 0;
    try {
      for await (const piece of body) {
        size += piece.length;
        for (const c of digester.push(piece)) hashes.push(c.hash);
        if (!out.write(piece)) await once(out, 'drain');
      }
      for (const c of digester.finish()) hashes.push(c.hash);
      out.end();
      await once(out, 'finish');
    } finally {
      out.destroy();
    }
    const got = manifestHash(hashes);
    if (got !== expectHash) {
      // The bytes are checked, so nothing wrong is ever written; other bytes mean a newer version (or damage): not this step's content.
      throw Object.assign(new Error(`download of ${id} does not match its content hash (got ${got.slice(0, 12)}…, expected ${expectHash.slice(0, 12)}…)`), { code: 'CONTENT_CHANGED' });
    }
    const fh = await open(temp, 'r+');
    try { await fh.sync(); } finally { await fh.close(); }
    return size;
  }

  /** Why the target is not as expected (null when it is): absent when `expectHash` is null, else holding that content. */
  private async unexpected(id: string, target: string, expectHash: string | null): Promise<string | null> {
    const st = await lstat(target).catch(() => null);
    if (expectHash === null) return st ? 'a file with this name appeared' : null;
    if (!st || !st.isFile()) return 'the file is gone';
    const hash = await this.currentHash(id, target, st);
    return hash === expectHash ? null : 'the file was changed since the scan';
  }

  private async currentHash(id: string, path: string, st: FileStamp): Promise<string> {
    const seen = this.stamps.get(id);
    if (seen && seen.hash && seen.dev === st.dev && seen.ino === st.ino && seen.size === st.size && seen.mtimeMs === st.mtimeMs) return seen.hash;
    return (await hashFile(path, st.size)).hash;
  }

  private async move(id: string, parentId: string, name: string): Promise<StepOutcome> {
    const from = this.state.absPath(id);
    const parent = this.state.absPath(parentId);
    if (from === null || parent === null) return skip('it or its new folder is not there');
    const to = join(parent, name);
    if (await lstat(from).then(() => false, () => true)) return skip('it is gone');
    if (from !== to && await lstat(to).then(() => true, () => false)) {
      // A name differing only in case is the same entry on a case-folding file system: renaming onto it is fine.
      if (from.toLowerCase() !== to.toLowerCase()) return skip('something with the new name exists');
    }
    await rename(from, to);
    this.state.move(id, parentId, name);
    const st = await stat(to);
    const seen = this.stamps.get(id);
    this.onChanged(id, { dev: st.dev, ino: st.ino, size: st.isFile() ? st.size : 0, mtimeMs: st.mtimeMs, hash: seen?.hash ?? this.state.node(id)?.hash ?? null });
    return DONE;
  }

  private async remove(op: Extract<Op, { type: 'delete' }>): Promise<StepOutcome> {
    const path = this.state.absPath(op.id);
    if (path === null) return skip('it is not there');
    const st = await lstat(path).catch(() => null);
    if (!st) {
      this.state.delete(op.id);
      this.onChanged(op.id, null);
      return DONE;
    }
    if (op.kind === 'file') {
      if (!st.isFile()) return skip('it is not a file any more');
      // Only content the server holds may go: the synced content, re-checked now.
      if ((await this.currentHash(op.id, path, st)) !== op.expectHash) return skip('the file was changed since the scan');
      await unlink(path);
    } else {
      try {
        await rmdir(path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOTEMPTY' || (e as NodeJS.ErrnoException).code === 'EEXIST') return skip('the folder is not empty');
        throw e;
      }
    }
    this.state.delete(op.id);
    this.onChanged(op.id, null);
    return DONE;
  }
}
