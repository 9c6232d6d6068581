/**
 * Group commit for SQLite. The database runs with `synchronous = NORMAL`, so
 * a COMMIT writes the WAL without fsync and returns at once; before a
 * state-changing request is answered, `sync()` fsyncs the WAL file. One
 * fsync covers every commit written before it started, so concurrent
 * requests share it — and it runs off the event loop, where `FULL` would
 * block every other request for the length of each fsync.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

export class GroupSync {
  readonly #walPath: string;
  #fh: FileHandle | null = null;
  #running: Promise<void> | null = null;
  #next: Promise<void> | null = null;

  constructor(walPath: string) {
    this.#walPath = walPath;
  }

  /** Resolves once every commit made before the call is on disk. */
  sync(): Promise<void> {
    if (!this.#running) {
      this.#running = this.#fsync().finally(() => { this.#running = null; });
      return this.#running;
    }
    // The fsync in flight may have started before our commit: join the next one.
    this.#next ??= this.#running.then(() => { this.#next = null; return this.sync(); });
    return this.#next;
  }

  async close(): Promise<void> {
    await this.#running?.catch(() => {});
    await this.#fh?.close();
    this.#fh = null;
  }

  async #fsync(): Promise<void> {
    if (!this.#fh) {
      try {
        this.#fh = await open(this.#walPath, 'r');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return; // nothing committed yet
        throw e;
      }
      // The WAL file's own directory entry must be durable too, once.
      const dir = await open(dirname(this.#walPath), 'r');
      try { await dir.sync(); } finally { await dir.close(); }
    }
    await this.#fh.sync();
  }
}
