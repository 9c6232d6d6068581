/**
 * Puts one upload's chunks into packs (blobstore/packed.blob-store.ts): the
 * chunks are appended to an open pack, and a pack is sealed (made durable
 * under its key, one fsync) once it holds PACK_BYTES, or when the writer asks
 * because it waits for its chunks to be durable. A chunk's key is known only
 * once its pack is sealed: the pack key carries the seal time, which the
 * orphan sweep reads (a pack nothing names yet is safe for ORPHAN_GRACE_MS).
 */
import { CofferError } from '@coffer/protocol';
import type { BlobPack } from '../blobstore/blob-store.ts';
import { PACK_KEY_PREFIX, packMemberKey } from '../blobstore/packed.blob-store.ts';
import { newGeneration } from '../db/ids.ts';

/**
 * Bytes after which a pack is sealed. 16 MiB: large enough that its fsync and rename cost little per byte, small
 * enough that the writer's bound on unsynced bytes holds three (two syncing while the next fills).
 */
export const PACK_BYTES = 16 * 1024 * 1024;

/** Where a chunk was stored, once its pack is durable: its member key, the pack's key and time, and how many chunks the pack holds. */
export interface PackedChunk { key: string; pack: string; bornAt: number; members: number }

interface SealedPack { key: string; bornAt: number; members: number }

interface OpenPack {
  pack: BlobPack;
  sealed: Promise<SealedPack>;
  resolve: (v: SealedPack) => void;
  members: number;
  reject: (e: unknown) => void;
}

/** A fresh pack key of this owner: `p/<owner>/pack.<time36>-<random>`, its time read back by the orphan sweep. */
export function newPackKey(ownerId: string, now: number): string {
  return `${PACK_KEY_PREFIX}${ownerId}/pack.${newGeneration(now)}`;
}

function ended(): CofferError {
  return new CofferError('UPLOAD_INCOMPLETE', 'The upload ended before these chunks were stored.');
}

export class ChunkPacker {
  readonly #openPack: () => BlobPack;
  readonly #ownerId: string;
  readonly #now: () => number;
  #open: OpenPack | null = null;
  /** Set by abort: a chunk that arrives later (its dedup lookup was still running) is refused, not put in a new pack. */
  #aborted = false;
  /** Packs sealed and not yet durable. */
  #sealing = 0;

  constructor(openPack: () => BlobPack, ownerId: string, now: () => number) {
    this.#openPack = openPack;
    this.#ownerId = ownerId;
    this.#now = now;
  }

  /**
   * Appends a chunk to the open pack (opening one if needed). `written`: the packer no longer reads `data`.
   * `stored`: the chunk's key, once its pack is sealed; rejects if the pack could not be stored or was aborted.
   */
  append(data: Uint8Array): { written: Promise<void>; stored: Promise<PackedChunk> } {
    if (this.#aborted) return { written: Promise.resolve(), stored: Promise.reject(ended()) };
    const open = this.#open ??= this.#start();
    const { offset, written } = open.pack.append(data);
    const size = data.byteLength;
    open.members++;
    const stored = open.sealed.then(({ key, bornAt, members }) => ({ key: packMemberKey(key, offset, size), pack: key, bornAt, members }));
    if (open.pack.size >= PACK_BYTES) this.seal();
    return { written, stored };
  }

  /** Seals the open pack, if there is one: its chunks become durable and get their keys. */
  seal(): void {
    const open = this.#open;
    if (!open) return;
    this.#open = null;
    const bornAt = this.#now();
    const key = newPackKey(this.#ownerId, bornAt);
    const { members } = open;
    this.#sealing++;
    const done = () => { this.#sealing--; };
    open.pack.seal(key).then(() => { done(); open.resolve({ key, bornAt, members }); }, (e: unknown) => { done(); open.reject(e); });
  }

  /**
   * Seals the open pack unless a sealed one is still becoming durable: a writer waiting for its chunks then waits
   * for that one, instead of sealing a pack of one chunk at each wake-up while the disk is behind.
   */
  sealIfIdle(): void {
    if (this.#sealing === 0) this.seal();
  }

  /** Drops the open pack, and refuses chunks from now on: they are never stored (the upload ended without them). Sealed packs are kept. */
  async abort(): Promise<void> {
    this.#aborted = true;
    const open = this.#open;
    if (!open) return;
    this.#open = null;
    open.reject(ended());
    await open.pack.abort();
  }

  #start(): OpenPack {
    let resolve!: OpenPack['resolve'];
    let reject!: OpenPack['reject'];
    const sealed = new Promise<SealedPack>((res, rej) => { resolve = res; reject = rej; });
    sealed.catch(() => {}); // each chunk's `stored` reports it
    return { pack: this.#openPack(), sealed, resolve, reject, members: 0 };
  }
}
