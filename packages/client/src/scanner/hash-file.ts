/**
 * Cuts a file with the protocol's chunker and hashes it: the content hash
 * the server will confirm, and the chunk list an upload needs. Reads in
 * 1 MiB pieces; memory stays at about one maximum chunk.
 */
import { createReadStream } from 'node:fs';
import { chunkHash, chunkStream, manifestHash } from '@coffer/protocol';

export interface ChunkRef {
  hash: string;
  size: number;
}

export interface FileDigest {
  hash: string;
  size: number;
  chunks: ChunkRef[];
}

export async function hashFile(path: string): Promise<FileDigest> {
  const chunks: ChunkRef[] = [];
  let size = 0;
  for await (const chunk of chunkStream(createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Uint8Array>)) {
    chunks.push({ hash: chunkHash(chunk), size: chunk.length });
    size += chunk.length;
  }
  return { hash: manifestHash(chunks.map((c) => c.hash)), size, chunks };
}
