/**
 * Cuts a file with the protocol's chunker and hashes it: the content hash
 * the server will confirm, and the chunk list an upload needs. A small file
 * is read in one piece of its own size (a 1 MiB read buffer per small file
 * made the collector the scanner's main cost); a large one streams in 1 MiB
 * pieces, so memory stays at about one maximum chunk.
 */
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { ChunkDigester, cutAll, type DigestedChunk } from '@coffer/protocol/chunker.ts';
import { chunkHash, manifestHash } from '@coffer/protocol/content-hash.ts';

export interface ChunkRef {
  hash: string;
  size: number;
}

export interface FileDigest {
  hash: string;
  size: number;
  chunks: ChunkRef[];
}

const WHOLE_FILE_MAX = 4 * 1024 * 1024;

/** `sizeHint`: the size a stat just gave, to pick the cheaper way to read. */
export async function hashFile(path: string, sizeHint?: number): Promise<FileDigest> {
  const chunks: ChunkRef[] = [];
  let size = 0;
  if (sizeHint !== undefined && sizeHint <= WHOLE_FILE_MAX) {
    const data = await readFile(path);
    for (const length of cutAll(data)) {
      chunks.push({ hash: chunkHash(data.subarray(size, size + length)), size: length });
      size += length;
    }
  } else {
    const digester = new ChunkDigester();
    const take = (done: DigestedChunk[]) => {
      for (const c of done) {
        chunks.push({ hash: c.hash, size: c.size });
        size += c.size;
      }
    };
    for await (const piece of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Uint8Array>) take(digester.push(piece));
    take(digester.finish());
  }
  return { hash: manifestHash(chunks.map((c) => c.hash)), size, chunks };
}
