/**
 * The content hash of a file: SHA-256 over the concatenated 32-byte binary
 * SHA-256 digests of its chunks, in order (docs/sync-protocol.md). Server
 * and clients compute it the same way, so a client can check the server's
 * confirmation of an upload without downloading anything.
 */
import { createHash } from 'node:crypto';

export function chunkHash(chunk: Uint8Array): string {
  return createHash('sha256').update(chunk).digest('hex');
}

export function manifestHash(chunkHashes: readonly string[]): string {
  const h = createHash('sha256');
  for (const c of chunkHashes) h.update(Buffer.from(c, 'hex'));
  return h.digest('hex');
}

/** The content hash of an empty file. */
export const EMPTY_CONTENT_HASH = manifestHash([]);
