import { randomUUID } from 'node:crypto';

/** Stable ids for users, items, versions and chunks. */
export function newId(): string {
  return randomUUID();
}

/**
 * A short random suffix for blob keys; see ChunksTable. Starts with the time, so age is readable from the key.
 * The 48 random bits are a v4 UUID's last group (all random): Node buffers UUID entropy, and a small
 * randomBytes() call costs ~15× more.
 */
export function newGeneration(now: number): string {
  return `${now.toString(36)}-${randomUUID().slice(-12)}`;
}
