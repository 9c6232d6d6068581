import { randomBytes, randomUUID } from 'node:crypto';

/** Stable ids for users, items, versions and chunks. */
export function newId(): string {
  return randomUUID();
}

/** A short random suffix for blob keys; see ChunksTable. Starts with the time, so age is readable from the key. */
export function newGeneration(now: number): string {
  return `${now.toString(36)}-${randomBytes(6).toString('hex')}`;
}
