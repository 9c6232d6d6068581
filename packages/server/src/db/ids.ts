import { randomFillSync, randomUUID } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';

/**
 * Stable ids for users, items, versions, chunks, sessions and devices: UUIDv7 (RFC 9562), whose
 * leading 48 bits are the creation time in milliseconds, so ids made one after another sort one
 * after another. Every table and index keyed by an id then grows at its right edge: a new row
 * dirties the same few B-tree pages as the row before, where a random (v4) id lands on a random
 * leaf of each index (a small upload touches six of them) and SQLite's WAL and its checkpoints
 * write each of those pages. 10,000 small uploads: COMMIT 3.2–3.5 s → 2.2–2.3 s in total.
 * Ids are names, never secrets (credentials and tokens come from `accounts/secrets.ts`); the
 * 74 random bits keep them unique across processes, and the time they reveal is shown anyway.
 */
export function newId(): string {
  const random = randomBytes16();
  const now = Date.now();
  // RFC 9562 §6.2 method 1, as the uuid package does by itself: a counter that starts at random each
  // millisecond and counts up within it (its overflow moves the time on), so ids stay in order.
  if (now > last.msecs) {
    last.msecs = now;
    last.seq = ((random[6]! & 0x7f) << 24) | (random[7]! << 16) | (random[8]! << 8) | random[9]!;
  } else {
    last.seq = (last.seq + 1) | 0;
    if (last.seq === 0) last.msecs++;
  }
  return uuidv7({ msecs: last.msecs, seq: last.seq, random });
}

const last = { msecs: -Infinity, seq: 0 };

/**
 * The random bytes come from a 4 KiB pool refilled by one call, where uuid's own source makes a
 * `crypto.getRandomValues` call per id: ~10 µs each on a busy server, ~4 % of a small upload's CPU.
 */
const pool = new Uint8Array(4096);
let taken = pool.length;
function randomBytes16(): Uint8Array {
  if (taken + 16 > pool.length) {
    randomFillSync(pool);
    taken = 0;
  }
  taken += 16;
  return pool.subarray(taken - 16, taken);
}

/**
 * A short random suffix for blob keys; see ChunksTable. Starts with the time, so age is readable from the key.
 * The 48 random bits are a v4 UUID's last group (all random): Node buffers UUID entropy, and a small
 * randomBytes() call costs ~15× more.
 */
export function newGeneration(now: number): string {
  return `${now.toString(36)}-${randomUUID().slice(-12)}`;
}

/** The time newGeneration put in a blob key (`….<base36 ms>-<random>`): when the blob was written. Null for a key without one. */
export function blobBirthTime(key: string): number | null {
  const m = /\.([0-9a-z]+)-[0-9a-f]+$/.exec(key);
  if (!m) return null;
  const t = parseInt(m[1]!, 36);
  return Number.isFinite(t) ? t : null;
}
