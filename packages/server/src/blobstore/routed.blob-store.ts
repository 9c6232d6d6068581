/**
 * One BlobStore made of two: keys under `prefix` live in `side` (small chunks
 * in the metadata database), every other key in `main` (local disk or S3).
 * The key alone says where a blob is, so nothing else needs to know.
 */
import type { Readable } from 'node:stream';
import { assertValidPrefix, type BlobPack, type BlobStat, type BlobStore, type LocalFile, type PutOptions } from './blob-store.ts';

export class RoutedBlobStore implements BlobStore {
  readonly kind: string;
  readonly capabilities: BlobStore['capabilities'];
  readonly #main: BlobStore;
  readonly #side: BlobStore;
  readonly #prefix: string;

  constructor(main: BlobStore, side: { prefix: string; store: BlobStore }) {
    assertValidPrefix(side.prefix);
    if (!side.prefix.endsWith('/')) throw new Error(`a routed prefix must be a folder: ${JSON.stringify(side.prefix)}`);
    this.#main = main;
    this.#side = side.store;
    this.#prefix = side.prefix;
    this.kind = main.kind; // what operators configured; the side store is always the metadata database
    this.capabilities = main.capabilities;
  }

  #for(key: string): BlobStore {
    return key.startsWith(this.#prefix) ? this.#side : this.#main;
  }

  async init(): Promise<void> {
    await this.#main.init();
    await this.#side.init();
  }

  put(key: string, data: Uint8Array, opts?: PutOptions): Promise<void> {
    return this.#for(key).put(key, data, opts);
  }

  get(key: string, range?: { start: number; end: number }): Promise<Readable> {
    return this.#for(key).get(key, range);
  }

  stat(key: string): Promise<BlobStat | null> {
    return this.#for(key).stat(key);
  }

  delete(key: string): Promise<void> {
    return this.#for(key).delete(key);
  }

  async *list(prefix: string): AsyncIterable<{ key: string; size: number }> {
    assertValidPrefix(prefix);
    // A prefix inside the routed folder is the side store's alone; one that covers it is both stores' (less the main store's copy of that folder, which is never written).
    if (prefix.startsWith(this.#prefix)) {
      yield* this.#side.list(prefix);
      return;
    }
    for await (const b of this.#main.list(prefix)) if (!b.key.startsWith(this.#prefix)) yield b;
    if (this.#prefix.startsWith(prefix)) yield* this.#side.list(this.#prefix);
  }

  async cleanupAbandoned(): Promise<number> {
    return (await this.#main.cleanupAbandoned()) + (await this.#side.cleanupAbandoned());
  }

  /** Null for a blob that has no file of its own (a routed one, or none on this store). */
  localFile(key: string): LocalFile | null {
    if (key.startsWith(this.#prefix) || !this.#main.localFile) return null;
    return this.#main.localFile(key);
  }

  /** Packs are built in the main store (the side store holds only small chunks, one row each). */
  get openPack(): (() => BlobPack) | undefined {
    return this.#main.openPack?.bind(this.#main);
  }

  async close(): Promise<void> {
    await this.#side.close();
    await this.#main.close();
  }
}
