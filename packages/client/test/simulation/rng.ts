/**
 * The simulation's only source of randomness: the reconciler's seeded
 * mulberry32 (`seeded`), wrapped with the few draws the schedule needs,
 * and `mix` to derive independent streams (one per sync's network faults,
 * one per file's bytes) from the seed and a step number, so that a fault
 * drawn in one sync never shifts the schedule of the steps after it.
 */
import { Chunker, chunkHash, manifestHash } from '@coffer/protocol';
import { seeded, type Random } from '../../src/reconciler/random-trees.ts';

export class Rng {
  private readonly r: Random;
  constructor(seed: number) {
    this.r = seeded(seed);
  }
  next(): number {
    return this.r();
  }
  /** 0 … n-1 */
  int(n: number): number {
    return Math.floor(this.r() * n);
  }
  /** lo … hi, both included */
  between(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.r() < p;
  }
  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new Error('rng.pick from an empty list');
    return xs[this.int(xs.length)];
  }
  /** One of the keys, by weight (in the order given, so the same draw gives the same key everywhere). */
  weighted<K extends string>(weights: readonly (readonly [K, number])[]): K {
    const total = weights.reduce((s, [, w]) => s + w, 0);
    let x = this.r() * total;
    for (const [k, w] of weights) {
      if (x < w) return k;
      x -= w;
    }
    return weights[weights.length - 1][0];
  }
  uint32(): number {
    return Math.floor(this.r() * 4294967296) >>> 0;
  }
}

/** A 32-bit seed from several numbers (murmur3's finalizer over each). */
export function mix(...xs: number[]): number {
  let h = 0x9e3779b9;
  for (const x of xs) {
    h = Math.imul(h ^ (x >>> 0), 0x85ebca6b) >>> 0;
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/**
 * Unique file content for one step: a header naming seed, step and author
 * (so no two writes ever produce the same bytes), then filler of a random
 * length; now and then a file of a few MB (several chunks, uploaded on its
 * own rather than in a batch, so uploads and resumed downloads are
 * exercised chunk by chunk).
 */
export function contentFor(rng: Rng, seed: number, step: number, author: string): Buffer {
  const head = Buffer.from(`coffer-sim seed ${seed} step ${step} by ${author}\n`);
  if (rng.chance(0.015)) {
    // Above the engine's 4 MiB batching limit: uploaded on its own, several chunks, a download worth resuming.
    const size = rng.between(4_300_000, 6_000_000);
    const bytes = new Rng(mix(seed, step, 0xb16));
    const body = Buffer.allocUnsafe(size);
    for (let i = 0; i + 4 <= size; i += 4) body.writeUInt32LE(bytes.uint32(), i);
    body.fill(7, size - (size % 4));
    return Buffer.concat([head, body]);
  }
  const n = rng.int(700);
  const letters = 'abcdefghijklmnopqrstuvwxyz \n';
  let filler = '';
  for (let i = 0; i < n; i++) filler += letters[rng.int(letters.length)];
  return Buffer.concat([head, Buffer.from(filler)]);
}

/** The content hash the server computes for these bytes (chunk digests, then the manifest). */
export function contentHash(bytes: Uint8Array): string {
  const chunker = new Chunker();
  const hashes = chunker.push(bytes).map((c) => chunkHash(c));
  for (const c of chunker.finish()) hashes.push(chunkHash(c));
  return manifestHash(hashes);
}
