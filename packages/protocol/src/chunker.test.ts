import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import {
  CHUNK_AVG, CHUNK_MAX, CHUNK_MIN, CHUNK_NORMALIZATION, GEAR_SEED, ChunkDigester, Chunker, chunkStream, cutAll, findBoundary,
  generateGearTable, type ChunkerParams,
} from './chunker.ts';
import { chunkHash } from './content-hash.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Small chunks so that properties run fast. */
const SMALL = { min: 64, avg: 256, max: 1024 };

/**
 * Test data: xorshift32 (Marsaglia: x ^= x << 13; x ^= x >>> 17; x ^= x << 5,
 * on 32-bit unsigned x), one word per step, written little-endian.
 */
function xorshiftBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 255;
    if (i + 1 < n) out[i + 1] = (x >>> 8) & 255;
    if (i + 2 < n) out[i + 2] = (x >>> 16) & 255;
    if (i + 3 < n) out[i + 3] = x >>> 24;
  }
  return out;
}

/** The algorithm as written in the chunker.ts header, as plainly as possible. */
function referenceCut(data: Uint8Array, params: Required<ChunkerParams>): number[] {
  const gear = generateGearTable();
  const bits = Math.log2(params.avg);
  const top = (b: number) => (0xffffffff << (32 - b)) >>> 0;
  const maskS = top(bits + 2);
  const maskL = top(bits - 2);
  const lengths: number[] = [];
  let start = 0;
  while (start < data.length) {
    const n = data.length - start;
    let len = Math.min(n, params.max);
    if (n > params.min) {
      let h = 0;
      for (let i = params.min; i < Math.min(n, params.max); i++) {
        h = (h * 2 + gear[data[start + i]]) % 2 ** 32;
        const mask = i < params.avg ? maskS : maskL;
        if ((h & mask) === 0) {
          len = i + 1;
          break;
        }
      }
    }
    lengths.push(len);
    start += len;
  }
  return lengths;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Feeds `data` to a Chunker cut at the given split points (any order, any values). */
function streamChunks(data: Uint8Array, splits: number[], params?: ChunkerParams): Uint8Array[] {
  const points = [...new Set(splits.map((s) => s % (data.length + 1)))].sort((a, b) => a - b);
  const chunker = new Chunker(params);
  const chunks: Uint8Array[] = [];
  let prev = 0;
  for (const p of [...points, data.length]) {
    chunks.push(...chunker.push(data.subarray(prev, p)));
    prev = p;
  }
  chunks.push(...chunker.finish());
  return chunks;
}

function ends(lengths: number[]): number[] {
  let at = 0;
  return lengths.map((l) => (at += l));
}

function insertAt(data: Uint8Array, p: number, ins: Uint8Array): Uint8Array {
  return concat([data.subarray(0, p), ins, data.subarray(p)]);
}

function assertBounds(lengths: number[], total: number, p: { min: number; max: number }): void {
  assert.equal(lengths.reduce((a, b) => a + b, 0), total);
  lengths.forEach((l, i) => {
    assert.ok(l >= 1 && l <= p.max, `chunk ${i} has ${l} bytes`);
    if (i < lengths.length - 1) assert.ok(l >= p.min, `chunk ${i} has ${l} < min bytes`);
  });
}

describe('chunker: constants and gear table', () => {
  it('has the protocol sizes', () => {
    assert.equal(CHUNK_MIN, 128 * KiB);
    assert.equal(CHUNK_AVG, 256 * KiB);
    assert.equal(CHUNK_MAX, 1 * MiB);
    assert.equal(CHUNK_NORMALIZATION, 2);
    assert.equal(GEAR_SEED, 0x436f666665724344n);
  });

  it('generates the documented gear table (SplitMix64, upper 32 bits)', () => {
    // The reference SplitMix64 with seed 0 starts 0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4.
    const zero = generateGearTable(0n);
    assert.equal(zero[0], 0xe220a839);
    assert.equal(zero[1], 0x6e789e6a);
    const gear = generateGearTable();
    assert.equal(gear.length, 256);
    assert.equal(gear[0], 0x99c88cfd);
    assert.equal(gear[1], 0x38ae18ee);
    assert.equal(gear[255], 0x303ad887);
    assert.equal(gear.reduce((s, v) => (s + v) >>> 0, 0), 0x9b6fe438);
    assert.equal(new Set(gear).size, 256);
  });
});

/**
 * cutAll of 20 MiB of xorshift32 data (seed 0xc0ffee) with the default parameters (128 KiB / 256 KiB / 1 MiB):
 * 66 chunks. Pinned so a change to the cut points cannot pass unnoticed (it would split every client from
 * every server's deduplication); 'agrees with the plain reference implementation' checks the same cut independently.
 */
const PINNED_DEFAULT = [
  521957, 318320, 298990, 363860, 276790, 263624, 299160, 226488, 274541, 348302, 322889, 198761,
  265533, 264402, 413417, 309626, 368717, 314747, 287313, 254920, 195047, 302051, 385186, 375879,
  316793, 264710, 297512, 290151, 290261, 403643, 325267, 490545, 305744, 393232, 400624, 408015,
  210735, 268200, 263325, 265071, 222248, 182787, 324303, 263516, 217100, 344302, 226385, 241008,
  284492, 307270, 291153, 401515, 280168, 339236, 582353, 288317, 477185, 287442, 284881, 452899,
  398484, 316737, 274742, 525633, 353760, 159256,
];

describe('chunker: pinned test vectors', () => {
  it('20 MiB of xorshift32 data (seed 0xc0ffee), default parameters', () => {
    const data = xorshiftBytes(20 * MiB, 0xc0ffee);
    const expected = PINNED_DEFAULT;
    assert.deepEqual(cutAll(data), expected);
    assert.deepEqual(streamChunks(data, [1, 65536, 3 * MiB + 5, 7 * MiB]).map((c) => c.length), expected);
  });

  it('20 MiB of xorshift32 data (seed 0xc0ffee), min 256 KiB / avg 1 MiB / max 4 MiB (the defaults before session 4)', () => {
    const data = xorshiftBytes(20 * MiB, 0xc0ffee);
    const params = { min: 256 * KiB, avg: 1 * MiB, max: 4 * MiB };
    const expected = [
      1799132, 1531194, 1434762, 1240645, 1068908, 1297981, 2455756, 1052337, 1059380, 1368711, 463378, 1369765,
      1992484, 1932727, 760520, 143840,
    ];
    assert.deepEqual(cutAll(data, params), expected);
  });

  it('6000 bytes of xorshift32 data (seed 1), min 64 / avg 256 / max 1024', () => {
    assert.deepEqual(cutAll(xorshiftBytes(6000, 1), SMALL), [
      307, 317, 279, 181, 263, 297, 132, 265, 294, 69, 287, 330, 261, 289, 398, 476, 246, 244, 269, 265, 318, 213,
    ]);
  });

  it('3 MiB + 17 bytes of xorshift32 data (seed 7), min 16 KiB / avg 64 KiB / max 256 KiB', () => {
    assert.deepEqual(cutAll(xorshiftBytes(3 * MiB + 17, 7), { min: 16 * KiB, avg: 64 * KiB, max: 256 * KiB }), [
      141524, 96739, 79783, 77929, 59377, 91463, 61781, 71434, 68627, 103462, 75540, 59770, 73885, 69555, 36211,
      84310, 79735, 92903, 89043, 70302, 70773, 67350, 87694, 78419, 29010, 65767, 38742, 66836, 81698, 71327, 65879,
      91585, 17466, 73315, 75448, 80125, 78750, 19040, 75371, 75957, 51498, 34198, 84574, 24892, 56658,
    ]);
  });

  it('periodic and constant inputs are cut at max', () => {
    const text = new TextEncoder().encode('Coffer keeps your files. '.repeat(200));
    assert.deepEqual(cutAll(text, SMALL), [1024, 1024, 1024, 1024, 904]);
    assert.deepEqual(cutAll(new Uint8Array(10 * MiB)), Array.from({ length: 10 }, () => CHUNK_MAX));
    assert.deepEqual(cutAll(new Uint8Array(2 * MiB + 5)), [CHUNK_MAX, CHUNK_MAX, 5]);
  });

  it('agrees with the plain reference implementation of the spec', () => {
    const data = xorshiftBytes(20 * MiB, 0xc0ffee);
    assert.deepEqual(cutAll(data), referenceCut(data, { min: CHUNK_MIN, avg: CHUNK_AVG, max: CHUNK_MAX }));
  });
});

describe('chunker: bounds and edge cases', () => {
  it('keeps every chunk but the last within [min, max] and covers the input', () => {
    const data = xorshiftBytes(20 * MiB, 42);
    assertBounds(cutAll(data), data.length, { min: CHUNK_MIN, max: CHUNK_MAX });
    const small = xorshiftBytes(100 * KiB, 43);
    assertBounds(cutAll(small, SMALL), small.length, SMALL);
  });

  it('gives no chunks for empty input', () => {
    assert.deepEqual(cutAll(new Uint8Array(0)), []);
    const chunker = new Chunker();
    assert.deepEqual(chunker.push(new Uint8Array(0)), []);
    assert.deepEqual(chunker.finish(), []);
    assert.equal(findBoundary(new Uint8Array(10), 10, 10), 0);
  });

  it('gives one chunk for input up to min, and for input below max without a cut point', () => {
    assert.deepEqual(cutAll(new Uint8Array(CHUNK_MIN)), [CHUNK_MIN]);
    assert.deepEqual(cutAll(new Uint8Array(5)), [5]);
    assert.deepEqual(cutAll(new Uint8Array(CHUNK_MAX)), [CHUNK_MAX]);
    assert.deepEqual(cutAll(new Uint8Array(CHUNK_MAX + 1)), [CHUNK_MAX, 1]);
  });

  it('findBoundary reports end - start when it needs more data, and works at an offset', () => {
    const data = xorshiftBytes(8000, 9);
    const lengths = cutAll(data, SMALL);
    // Less than the first cut available: no cut found yet.
    assert.equal(findBoundary(data, 0, lengths[0] - 1, SMALL), lengths[0] - 1);
    assert.equal(findBoundary(data, 0, lengths[0], SMALL), lengths[0]);
    assert.equal(findBoundary(data, lengths[0], data.length, SMALL), lengths[1]);
    // A start that is not 4-byte aligned in memory.
    const shifted = new Uint8Array(data.length + 3);
    shifted.set(data, 3);
    assert.equal(findBoundary(shifted, 3 + lengths[0], shifted.length, SMALL), lengths[1]);
    assert.throws(() => findBoundary(data, 10, 5), RangeError);
    assert.throws(() => findBoundary(data, 0, data.length + 1), RangeError);
  });

  it('rejects inconsistent parameters', () => {
    assert.throws(() => cutAll(new Uint8Array(1), { min: 64, avg: 300, max: 1024 }), RangeError);
    assert.throws(() => cutAll(new Uint8Array(1), { min: 512, avg: 256, max: 1024 }), RangeError);
    assert.throws(() => cutAll(new Uint8Array(1), { min: 64, avg: 256, max: 128 }), RangeError);
    assert.throws(() => new Chunker({ avg: 256 }), RangeError); // default min is above 256
    assert.throws(() => new Chunker({ min: 1.5, avg: 256, max: 1024 }), RangeError);
  });

  it('accepts Node Buffers at odd offsets and returns owned, exact-size chunks', () => {
    const data = xorshiftBytes(50 * KiB, 11);
    const pooled = Buffer.concat([Buffer.from([1, 2, 3]), Buffer.from(data)]).subarray(3);
    const chunker = new Chunker(SMALL);
    const chunks = [...chunker.push(pooled), ...chunker.finish()];
    assert.deepEqual(chunks.map((c) => c.length), cutAll(data, SMALL));
    for (const c of chunks) {
      assert.equal(Object.getPrototypeOf(c), Uint8Array.prototype);
      assert.equal(c.byteLength, c.buffer.byteLength);
      assert.notEqual(c.buffer, pooled.buffer);
    }
    assert.deepEqual(concat(chunks), data);
  });

  it('gives the same chunks when fed one byte at a time', () => {
    const data = xorshiftBytes(20 * KiB, 12);
    const chunker = new Chunker(SMALL);
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < data.length; i++) {
      chunks.push(...chunker.push(data.subarray(i, i + 1)));
      assert.ok(chunker.pendingBytes < SMALL.max);
    }
    chunks.push(...chunker.finish());
    assert.deepEqual(chunks.map((c) => c.length), cutAll(data, SMALL));
    assert.deepEqual(concat(chunks), data);
  });

  it('chunkStream cuts an async stream like cutAll', async () => {
    const data = xorshiftBytes(9 * MiB + 3, 13);
    async function* pieces() {
      for (let at = 0; at < data.length; at += 64 * KiB) yield Buffer.from(data.subarray(at, at + 64 * KiB));
    }
    const chunks: Uint8Array[] = [];
    for await (const c of chunkStream(pieces())) chunks.push(c);
    assert.deepEqual(chunks.map((c) => c.length), cutAll(data));
    assert.deepEqual(concat(chunks), data);
  });
});

describe('chunker: properties', () => {
  /** Random bytes, or low-entropy ones (few distinct values, long runs) that exercise the max cut. */
  const bytes = fc.oneof(
    fc.uint8Array({ maxLength: 6000 }),
    fc.uint8Array({ maxLength: 6000, min: 0, max: 3 }),
    fc.tuple(fc.integer({ min: 1, max: 2 ** 32 - 1 }), fc.nat({ max: 20000 })).map(([seed, n]) => xorshiftBytes(n, seed)),
  );
  const params = fc.constantFrom<Required<ChunkerParams>>(
    SMALL,
    { min: 0, avg: 8, max: 8 },
    { min: 1, avg: 32, max: 100 },
    { min: 100, avg: 128, max: 129 },
    { min: 300, avg: 512, max: 4096 },
  );

  it('cutAll agrees with the reference implementation, at any memory alignment', () => {
    fc.assert(
      fc.property(bytes, params, fc.nat({ max: 7 }), (data, p, shift) => {
        const backing = new Uint8Array(data.length + shift);
        backing.set(data, shift);
        const view = backing.subarray(shift);
        const lengths = cutAll(view, p);
        assert.deepEqual(lengths, referenceCut(data, p));
        assertBounds(lengths, data.length, p);
      }),
      { numRuns: 300 },
    );
  });

  it('streaming gives exactly cutAll, and the chunks reassemble the input, for any split points', () => {
    fc.assert(
      fc.property(bytes, params, fc.array(fc.nat(), { maxLength: 40 }), (data, p, splits) => {
        const chunks = streamChunks(data, splits, p);
        assert.deepEqual(chunks.map((c) => c.length), cutAll(data, p));
        assert.deepEqual(concat(chunks), data);
      }),
      { numRuns: 300 },
    );
  });

  it('chunkStream equals cutAll for any piece sizes', async () => {
    await fc.assert(
      fc.asyncProperty(bytes, fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 1, maxLength: 10 }), async (data, sizes) => {
        async function* pieces() {
          for (let at = 0, k = 0; at < data.length; k++) {
            const n = sizes[k % sizes.length];
            yield data.subarray(at, at + n);
            at += n;
          }
        }
        const chunks: Uint8Array[] = [];
        for await (const c of chunkStream(pieces(), SMALL)) chunks.push(c);
        assert.deepEqual(chunks.map((c) => c.length), cutAll(data, SMALL));
        assert.deepEqual(concat(chunks), data);
      }),
      { numRuns: 100 },
    );
  });

  it('ChunkDigester gives the hashes, offsets and sizes of cutAll\'s chunks for any piece sizes, copying nothing (each piece is overwritten right after it is pushed)', () => {
    fc.assert(
      fc.property(bytes, fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 1, maxLength: 10 }), (data, sizes) => {
        const digester = new ChunkDigester(SMALL);
        const got: { hash: string; offset: number; size: number }[] = [];
        for (let at = 0, k = 0; at < data.length; k++) {
          const piece = data.slice(at, at + sizes[k % sizes.length]);
          got.push(...digester.push(piece));
          piece.fill(0xee); // a reused read buffer: the digester must not have kept a view of it
          at += piece.length;
        }
        got.push(...digester.finish());
        let offset = 0;
        const expected = cutAll(data, SMALL).map((size) => {
          const c = { hash: chunkHash(data.subarray(offset, offset + size)), offset, size };
          offset += size;
          return c;
        });
        assert.deepEqual(got, expected);
      }),
      { numRuns: 100 },
    );
    const empty = new ChunkDigester();
    assert.deepEqual([...empty.push(new Uint8Array(0)), ...empty.finish()], [], 'an empty stream has no chunks');
  });

  it('is stable under an insertion: earlier chunks unchanged, later ones shifted after resynchronisation', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 ** 32 - 1 }),
        // At least ~16 KiB (≈ 60 small chunks) after the insertion: resynchronising can take a few
        // chunks (seed 753880185 on 8 KiB needed 3 of 12), so the 80% bound needs room to be meaningful.
        fc.integer({ min: 32 * KiB, max: 64 * KiB }),
        fc.double({ min: 0, max: 0.5, noNaN: true }),
        fc.uint8Array({ minLength: 1, maxLength: 300 }),
        (seed, len, at, ins) => {
          const data = xorshiftBytes(len, seed);
          const p = Math.floor(at * len);
          const before = ends(cutAll(data, SMALL));
          const after = ends(cutAll(insertAt(data, p, ins), SMALL));
          // Every cut at or before p depends only on bytes before p: unchanged.
          const prefix = before.filter((e) => e <= p);
          assert.deepEqual(after.slice(0, prefix.length), prefix);
          // Later cuts, shifted by the insertion, come back: once one is shared, all following are.
          const shifted = new Set(before.map((e) => e + ins.length));
          const sync = after.findIndex((e) => e > p + ins.length && shifted.has(e));
          assert.ok(sync >= 0, 'boundaries resynchronise');
          const tail = before.slice(before.indexOf(after[sync] - ins.length)).map((e) => e + ins.length);
          assert.deepEqual(after.slice(sync), tail);
          // Chunks that start at least max bytes after the insertion: at least 80% unchanged
          // (same length at the shifted offset, hence the same content).
          const starts = [0, ...before.slice(0, -1)];
          const afterChunks = new Set(ends(cutAll(insertAt(data, p, ins), SMALL)).map((e, i, a) => `${i ? a[i - 1] : 0}:${e}`));
          let far = 0;
          let kept = 0;
          starts.forEach((s, i) => {
            if (s < p + SMALL.max) return;
            far++;
            if (afterChunks.has(`${s + ins.length}:${before[i] + ins.length}`)) kept++;
          });
          assert.ok(far > 0);
          assert.ok(kept >= 0.8 * far, `${kept} of ${far} far chunks unchanged`);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('a 1-byte insert into 8 MiB changes at most 3 chunks (default parameters)', () => {
    const data = xorshiftBytes(8 * MiB, 0xbeef);
    const digest = (c: Uint8Array) => createHash('sha256').update(c).digest('hex');
    const split = (d: Uint8Array) => {
      let at = 0;
      return cutAll(d).map((l) => d.subarray(at, (at += l)));
    };
    const original = new Set(split(data).map(digest));
    assert.ok(original.size >= 4);
    for (const p of [4 * MiB, 1234567, 5 * MiB + 4321, 7 * MiB - 1, 3 * MiB + 1]) {
      for (const b of [0, 0x5a, 0xff]) {
        const changed = split(insertAt(data, p, Uint8Array.of(b))).filter((c) => !original.has(digest(c)));
        assert.ok(changed.length >= 1 && changed.length <= 3, `insert at ${p}: ${changed.length} chunks changed`);
      }
    }
  });
});
