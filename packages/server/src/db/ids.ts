import { randomUUID } from 'node:crypto';
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
  return uuidv7();
}

/**
 * A short random suffix for blob keys; see ChunksTable. Starts with the time, so age is readable from the key.
 * The 48 random bits are a v4 UUID's last group (all random): Node buffers UUID entropy, and a small
 * randomBytes() call costs ~15× more.
 */
export function newGeneration(now: number): string {
  return `${now.toString(36)}-${randomUUID().slice(-12)}`;
}
