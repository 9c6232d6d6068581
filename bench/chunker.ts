/**
 * Chunker throughput on 512 MiB of pseudo-random data (not a test).
 *
 *   node bench/chunker.ts [MiB]
 *
 * Prints MiB/s for: cutAll over one contiguous buffer (boundary search only),
 * the streaming Chunker fed 1 MiB pieces and 64 KiB Buffers (search + copying
 * each byte into its freshly allocated chunk), and SHA-256 (node:crypto) of
 * the resulting chunks, for comparison.
 * Data: xorshift32 (x ^= x << 13; x ^= x >>> 17; x ^= x << 5), seed 0x2545F491,
 * one 32-bit word per step in platform byte order.
 */
import { createHash } from 'node:crypto';
import { Chunker, cutAll, CHUNK_MIN, CHUNK_AVG, CHUNK_MAX } from '../packages/protocol/src/chunker.ts';

const MiB = 1024 * 1024;
const sizeMiB = Number(process.argv[2] ?? 512);
const size = sizeMiB * MiB;
const ROUNDS = 3;

function pseudoRandom(bytes: number, seed: number): Uint8Array {
  const words = new Uint32Array(bytes / 4);
  let x = seed >>> 0;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x;
  }
  return new Uint8Array(words.buffer);
}

function rate(bytes: number, ms: number): string {
  return (bytes / MiB / (ms / 1000)).toFixed(0).padStart(6);
}

function best(label: string, fn: () => void): number {
  let bestMs = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    fn();
    bestMs = Math.min(bestMs, performance.now() - t0);
  }
  console.log(`${label.padEnd(44)} ${rate(size, bestMs)} MiB/s   (best of ${ROUNDS}: ${bestMs.toFixed(0)} ms)`);
  return bestMs;
}

console.log(`chunker bench: ${sizeMiB} MiB, min/avg/max = ${CHUNK_MIN / 1024} KiB / ${CHUNK_AVG / MiB} MiB / ${CHUNK_MAX / MiB} MiB, node ${process.version}`);
const t0 = performance.now();
const data = pseudoRandom(size, 0x2545f491);
console.log(`generated data in ${(performance.now() - t0).toFixed(0)} ms`);

let lengths: number[] = [];
best('cutAll (contiguous buffer)', () => { lengths = cutAll(data); });
const mean = size / lengths.length;
console.log(`  ${lengths.length} chunks, mean ${(mean / 1024).toFixed(0)} KiB, min ${Math.min(...lengths.slice(0, -1)) / 1024 | 0} KiB, max ${Math.max(...lengths) / 1024 | 0} KiB`);

let chunks: Uint8Array[] = [];
best('Chunker.push, 1 MiB pieces (+copy)', () => {
  const c = new Chunker();
  chunks = [];
  for (let off = 0; off < size; off += MiB) chunks.push(...c.push(data.subarray(off, off + MiB)));
  chunks.push(...c.finish());
});
if (chunks.length !== lengths.length || chunks.some((c, i) => c.length !== lengths[i])) {
  throw new Error('streaming and cutAll disagree');
}

best('Chunker.push, 64 KiB Buffer pieces (+copy)', () => {
  // Like an HTTP request body: Node Buffers of 64 KiB.
  const c = new Chunker();
  let count = 0;
  for (let off = 0; off < size; off += 64 * 1024) count += c.push(Buffer.from(data.buffer, off, 64 * 1024)).length;
  count += c.finish().length;
  if (count !== lengths.length) throw new Error('streaming and cutAll disagree');
});

best('SHA-256 of the chunks (node:crypto)', () => {
  for (const c of chunks) createHash('sha256').update(c).digest();
});
