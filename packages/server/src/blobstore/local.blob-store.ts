/**
 * Blobs as plain files under a root folder: `<root>/<key>`.
 *
 * Writers stage data in `<root>/.tmp/<pid>-<random>`: one folder on the same
 * filesystem keeps rename atomic and lets cleanupAbandoned read one directory
 * instead of walking every shard. Keys starting with `.tmp/` are reserved.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import {
  assertValidKey,
  assertValidPrefix,
  assertValidRange,
  BlobNotFoundError,
  type BlobPack,
  type BlobStat,
  type BlobStore,
  type LocalFile,
  type PutOptions,
} from './blob-store.ts';

const TMP_DIR = '.tmp';
const WRITE_SLICE = 1 << 20;
const READ_HIGH_WATER_MARK = 1 << 20;
/** A temp file this old is abandoned even if its pid now belongs to another process. */
const ABANDONED_AFTER_MS = 60 * 60 * 1000;

export class LocalBlobStore implements BlobStore {
  readonly kind = 'local';
  readonly capabilities = { localFiles: true } as const;
  readonly root: string;
  readonly #tmpDir: string;
  /** Our own temp files still being written: cleanup must never pull them away. */
  readonly #inFlight = new Set<string>();
  readonly #knownDirs = new Set<string>();
  readonly #dirs = new DirectorySyncer();

  constructor(rootDir: string) {
    this.root = resolve(rootDir);
    this.#tmpDir = join(this.root, TMP_DIR);
  }

  async init(): Promise<void> {
    await mkdir(this.#tmpDir, { recursive: true });
  }

  localFile(key: string): LocalFile {
    return { path: this.localPath(key), offset: 0 };
  }

  localPath(key: string): string {
    assertValidKey(key);
    if (key === TMP_DIR || key.startsWith(`${TMP_DIR}/`)) {
      throw new Error(`invalid blob key: ${JSON.stringify(key)} (reserved)`);
    }
    return join(this.root, ...key.split('/'));
  }

  async put(key: string, data: Uint8Array, opts?: PutOptions): Promise<void> {
    let told = false;
    const written = () => {
      if (!told) { told = true; opts?.onWritten?.(); }
    };
    try {
      await this.#put(key, data, written);
    } finally {
      written(); // a put that failed before its write is done with `data` too
    }
  }

  async #put(key: string, data: Uint8Array, onWritten: () => void): Promise<void> {
    const path = this.localPath(key);
    const tmp = await this.#newTemp();
    let fh: FileHandle | undefined;
    try {
      fh = await open(tmp, 'wx');
      await writeAll(fh, data, 0);
      onWritten(); // the bytes are in the page cache: the caller may reuse the buffer while fsync runs
      await fh.sync();
      await fh.close();
      fh = undefined;
    } catch (err) {
      await fh?.close().catch(() => {});
      await this.#dropTemp(tmp, err);
      throw err;
    }
    await this.#commitTemp(tmp, path);
  }

  /** A fresh temp name in the staging folder, protected from cleanupAbandoned until #commitTemp or #dropTemp. */
  async #newTemp(): Promise<string> {
    if (!this.#knownDirs.has(this.#tmpDir)) {
      await mkdir(this.#tmpDir, { recursive: true });
      this.#knownDirs.add(this.#tmpDir);
    }
    const tmp = join(this.#tmpDir, `${process.pid}-${randomBytes(8).toString('hex')}`);
    this.#inFlight.add(tmp);
    return tmp;
  }

  async #dropTemp(tmp: string, err?: unknown): Promise<void> {
    if (err !== undefined && isMissing(err)) {
      // Someone removed folders under us: look again next time, and drop handles on folders that may be gone.
      this.#knownDirs.clear();
      await this.#dirs.forget();
    }
    await rm(tmp, { force: true }).catch(() => {});
    this.#inFlight.delete(tmp);
  }

  /** Renames a complete, fsynced temp file to `path` and makes the rename durable. */
  async #commitTemp(tmp: string, path: string): Promise<void> {
    const dir = dirname(path);
    try {
      // Shard folders only ever appear; remembering them saves two syscalls per put.
      let firstCreated = this.#knownDirs.has(dir) ? undefined : await mkdir(dir, { recursive: true });
      try {
        await rename(tmp, path);
      } catch (err) {
        if (!isMissing(err) || !this.#knownDirs.has(dir)) throw err;
        // The shard folder we remembered was removed under us: forget what we knew and make it again, once.
        this.#knownDirs.clear();
        await this.#dirs.forget();
        firstCreated = await mkdir(dir, { recursive: true });
        await rename(tmp, path);
      }
      this.#inFlight.delete(tmp);
      // The rename is durable only once the directory entry is; new shard folders need their parents synced too.
      await this.#dirs.sync(dir);
      for (let d = dir; firstCreated !== undefined && d !== dirname(d); d = dirname(d)) {
        await this.#dirs.sync(dirname(d));
        if (d === firstCreated) break;
      }
    } catch (err) {
      await this.#dropTemp(tmp, err);
      throw err;
    }
    this.#knownDirs.add(dir);
  }

  /**
   * A pack: appends go to one temp file with positional writes (several may be in flight), and `seal` makes it
   * durable with one fsync and one rename, where per-chunk blobs cost an fsync, a rename and a folder fsync each.
   */
  openPack(): BlobPack {
    const file = this.#newTemp().then(async (tmp) => {
      try {
        return { tmp, fh: await open(tmp, 'wx') };
      } catch (err) {
        await this.#dropTemp(tmp, err);
        throw err;
      }
    });
    file.catch(() => {}); // reported by seal
    const writes: Promise<void>[] = [];
    let size = 0;
    let ended = false;
    let aborted = false;
    /** The seal or the abort, whichever came first: the other then only waits for it. */
    let settled: Promise<void> | null = null;
    return {
      get size() { return size; },
      append: (data) => {
        if (ended) throw new Error('append to a sealed or aborted pack');
        const offset = size;
        size += data.byteLength;
        const write = file.then(({ fh }) => writeAll(fh, data, offset));
        writes.push(write);
        return { offset, written: write.then(() => {}, () => {}) };
      },
      seal: (key) => {
        if (aborted) return Promise.reject(new Error('seal of an aborted pack'));
        ended = true;
        settled ??= (async () => {
          const { tmp, fh } = await file;
          let path: string;
          try {
            path = this.localPath(key); // an invalid key rejects the seal, and the temp file is dropped
            const failed = (await Promise.allSettled(writes)).find((r) => r.status === 'rejected');
            if (failed) throw (failed as PromiseRejectedResult).reason;
            await fh.sync();
            await fh.close();
          } catch (err) {
            await fh.close().catch(() => {});
            await this.#dropTemp(tmp, err);
            throw err;
          }
          await this.#commitTemp(tmp, path);
        })();
        return settled;
      },
      abort: async () => {
        ended = true;
        if (settled === null) aborted = true;
        // After a seal there is nothing of ours left to drop (a failed seal dropped its temp file).
        settled ??= (async () => {
          await Promise.allSettled(writes);
          const f = await file.catch(() => null);
          if (!f) return;
          await f.fh.close().catch(() => {});
          await this.#dropTemp(f.tmp);
        })();
        await settled.catch(() => {});
      },
    };
  }

  async get(key: string, range?: { start: number; end: number }): Promise<Readable> {
    const path = this.localPath(key);
    if (range) assertValidRange(range);
    // Opening first makes a missing blob a rejection here rather than a stream error later.
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      if (isMissing(err)) throw new BlobNotFoundError(key);
      throw err;
    }
    try {
      if (!(await fh.stat()).isFile()) throw new BlobNotFoundError(key);
    } catch (err) {
      await fh.close();
      throw err;
    }
    return fh.createReadStream({ start: range?.start, end: range?.end, highWaterMark: READ_HIGH_WATER_MARK });
  }

  async stat(key: string): Promise<BlobStat | null> {
    const path = this.localPath(key);
    try {
      const st = await stat(path);
      return st.isFile() ? { size: st.size } : null;
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    const path = this.localPath(key);
    try {
      await unlink(path);
    } catch (err) {
      if (!isMissing(err)) throw err;
    }
    // Empty shard folders stay: removing them would race with a put's mkdir + rename.
  }

  async *list(prefix: string): AsyncIterable<{ key: string; size: number }> {
    assertValidPrefix(prefix);
    const cut = prefix.lastIndexOf('/') + 1;
    yield* this.#walk(prefix.slice(0, cut), prefix.slice(cut));
  }

  async *#walk(dirKey: string, namePrefix: string): AsyncGenerator<{ key: string; size: number }> {
    let entries;
    try {
      entries = await readdir(join(this.root, dirKey), { withFileTypes: true });
    } catch (err) {
      if (isMissing(err)) return;
      throw err;
    }
    for (const entry of entries) {
      if (!entry.name.startsWith(namePrefix)) continue;
      if (dirKey === '' && entry.name === TMP_DIR) continue;
      const key = dirKey + entry.name;
      if (entry.isDirectory()) {
        yield* this.#walk(`${key}/`, '');
      } else if (entry.isFile()) {
        const size = await stat(join(this.root, key)).then((s) => s.size, (err) => {
          if (isMissing(err)) return null; // deleted while listing
          throw err;
        });
        if (size !== null) yield { key, size };
      }
    }
  }

  async cleanupAbandoned(): Promise<number> {
    let names: string[];
    try {
      names = await readdir(this.#tmpDir);
    } catch (err) {
      if (isMissing(err)) return 0;
      throw err;
    }
    let removed = 0;
    for (const name of names) {
      const path = join(this.#tmpDir, name);
      if (this.#inFlight.has(path)) continue;
      const st = await stat(path).catch(() => null);
      if (!st) continue;
      const pid = Number(/^(\d+)-/.exec(name)?.[1]);
      const writerGone = !Number.isSafeInteger(pid) || !isAlive(pid);
      if (writerGone || Date.now() - st.mtimeMs > ABANDONED_AFTER_MS) {
        await rm(path, { force: true });
        removed++;
      }
    }
    return removed;
  }

  async close(): Promise<void> {
    await this.#dirs.forget();
  }
}

/** Writes all of `data` at `position`: fh.write may write less than asked, and slices keep each syscall bounded. */
async function writeAll(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  for (let off = 0; off < data.byteLength; ) {
    const { bytesWritten } = await fh.write(data, off, Math.min(WRITE_SLICE, data.byteLength - off), position + off);
    off += bytesWritten;
  }
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to another user.
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * fsyncs folders after a rename into them. It keeps the most recently used
 * folders open (one open + close less per blob), and puts that land in the
 * same folder at once share an fsync: one that starts after a rename covers it.
 */
class DirectorySyncer {
  static readonly MAX_OPEN = 64;
  readonly #open = new Map<string, OpenDir>();

  async sync(dir: string): Promise<void> {
    let d = this.#open.get(dir);
    if (d) {
      this.#open.delete(dir); // re-inserted below: the map's order is least recently used first
    } else {
      d = new OpenDir(dir);
    }
    this.#open.set(dir, d);
    d.users++;
    try {
      await d.sync();
    } catch (err) {
      if (this.#open.get(dir) === d) {
        this.#open.delete(dir);
        void d.closeWhenIdle(); // dropped from the map, it would otherwise stay open until the garbage collector closed it
      }
      throw err;
    } finally {
      d.users--;
      this.#trim();
    }
  }

  /** Closes every folder handle (when folders may have been removed, and on close). */
  async forget(): Promise<void> {
    const all = [...this.#open.values()];
    this.#open.clear();
    await Promise.all(all.map((d) => d.closeWhenIdle()));
  }

  #trim(): void {
    for (const [dir, d] of this.#open) {
      if (this.#open.size <= DirectorySyncer.MAX_OPEN) break;
      if (d.users > 0) continue;
      this.#open.delete(dir);
      void d.closeWhenIdle();
    }
  }
}

class OpenDir {
  users = 0;
  readonly #handle: Promise<FileHandle>;
  #running: Promise<void> | null = null;
  #next: Promise<void> | null = null;

  constructor(path: string) {
    this.#handle = open(path, 'r');
    this.#handle.catch(() => {}); // the first sync() reports it
  }

  /** Resolves once an fsync that started after the call has finished. */
  sync(): Promise<void> {
    if (!this.#running) {
      this.#running = this.#handle.then((fh) => fh.sync()).finally(() => { this.#running = null; });
      return this.#running;
    }
    // The fsync in flight may have started before our rename: join the next one.
    this.#next ??= this.#running.catch(() => {}).then(() => { this.#next = null; return this.sync(); });
    return this.#next;
  }

  async closeWhenIdle(): Promise<void> {
    // A put that took this handle before it was dropped may still be about to use it.
    while (this.users > 0 || this.#running || this.#next) {
      await (this.#next ?? this.#running)?.catch(() => {});
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const fh = await this.#handle.catch(() => null);
    await fh?.close().catch(() => {});
  }
}
