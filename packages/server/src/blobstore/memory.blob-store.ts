/** Blobs in a Map, for unit tests of services. Nothing survives the process. */
import { Readable } from 'node:stream';
import {
  assertValidKey,
  assertValidPrefix,
  assertValidRange,
  BlobNotFoundError,
  type BlobPack,
  type BlobStat,
  type BlobStore,
  type PutOptions,
} from './blob-store.ts';

export class MemoryBlobStore implements BlobStore {
  readonly kind = 'memory';
  readonly capabilities = { localFiles: false } as const;
  readonly #blobs = new Map<string, Uint8Array>();

  async init(): Promise<void> {}

  async put(key: string, data: Uint8Array, opts?: PutOptions): Promise<void> {
    try {
      assertValidKey(key);
      // A copy, so a caller reusing its buffer cannot change a stored blob.
      this.#blobs.set(key, new Uint8Array(data));
    } finally {
      opts?.onWritten?.();
    }
  }

  async get(key: string, range?: { start: number; end: number }): Promise<Readable> {
    assertValidKey(key);
    if (range) assertValidRange(range);
    const blob = this.#blobs.get(key);
    if (!blob) throw new BlobNotFoundError(key);
    const bytes = range ? blob.subarray(range.start, range.end + 1) : blob;
    // An array, so Readable.from emits the bytes as one chunk instead of iterating them.
    return Readable.from(bytes.byteLength > 0 ? [Buffer.from(bytes)] : []);
  }

  async stat(key: string): Promise<BlobStat | null> {
    assertValidKey(key);
    const blob = this.#blobs.get(key);
    return blob ? { size: blob.byteLength } : null;
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    this.#blobs.delete(key);
  }

  async *list(prefix: string): AsyncIterable<{ key: string; size: number }> {
    assertValidPrefix(prefix);
    for (const [key, blob] of [...this.#blobs]) {
      if (key.startsWith(prefix)) yield { key, size: blob.byteLength };
    }
  }

  /** A pack held in memory until it is sealed. */
  openPack(): BlobPack {
    const parts: Uint8Array[] = [];
    let size = 0;
    let done = false;
    return {
      get size() { return size; },
      append: (data) => {
        if (done) throw new Error('append to a sealed or aborted pack');
        const offset = size;
        parts.push(new Uint8Array(data));
        size += data.byteLength;
        return { offset, written: Promise.resolve() };
      },
      seal: async (key) => {
        if (done) throw new Error('seal of a sealed or aborted pack');
        done = true;
        assertValidKey(key);
        this.#blobs.set(key, Buffer.concat(parts));
      },
      abort: async () => { done = true; },
    };
  }

  async cleanupAbandoned(): Promise<number> {
    return 0;
  }

  async close(): Promise<void> {}
}
