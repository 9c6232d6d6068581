/**
 * Uploads one local file with the chunk protocol (docs/sync-protocol.md):
 * cut it with the shared chunker and hash it, start a session, ask which
 * chunks the drive lacks, send only those (read again from the file, one
 * chunk at a time: memory stays at about one maximum chunk whatever the
 * file's size), and commit the manifest conditionally — `mustNotExist` for
 * a new file, `ifMatch` (the ETag of the version it replaces) for a new
 * version — so a change made elsewhere meanwhile is never overwritten.
 *
 * The upload counts only if the server's confirmation carries the content
 * hash computed here (CONTENT_MISMATCH otherwise). A file that changes
 * while it is uploaded (its size, mtime or identity differ from the start,
 * or a chunk read again hashes differently) is not committed: the session
 * is abandoned and LOCAL_FILE_CHANGED thrown, for the next round to pick up.
 *
 * Interrupted sends resume the protocol's way: ask `missing` again and send
 * what it lists; a session that vanished (expired, server restarted) is
 * replaced. Commits are not repeated after an ambiguous failure.
 */
import { open, stat, type FileHandle } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { CHUNK_MAX, ChunkDigester } from '@coffer/protocol/chunker.ts';
import { chunkHash, manifestHash } from '@coffer/protocol/content-hash.ts';
import { ApiError, isRetryable } from './api-error.ts';
import type { ApiClient } from './api-client.ts';
import type { CommitFile, RemoteItem } from './types.ts';

/** The part of the API client an upload uses. */
export type UploadApi = Pick<ApiClient, 'startUpload' | 'missing' | 'putChunks' | 'commit' | 'abandonUpload' | 'backoff'>;

export type UploadTarget = { parentId: string; name: string } | { itemId: string; ifMatch: string };

export interface UploadOptions {
  /** Bytes of chunks handed to the connection so far (dedup'd chunks are never sent). */
  onProgress?: (sentBytes: number) => void;
  /** Rounds of missing → chunks → commit before giving up, default 5. */
  maxAttempts?: number;
}

export interface UploadResult {
  item: RemoteItem;
  /** The content hash computed locally, and confirmed by the server. */
  contentHash: string;
  size: number;
}

interface ChunkRef { hash: string; offset: number; size: number }

const READ_PIECE = 1 << 20;

export function localFileChanged(path: string, why: string): ApiError {
  return new ApiError({ code: 'LOCAL_FILE_CHANGED', status: 0, message: `${path} changed while it was being uploaded (${why}); it was not committed.`, details: { path } });
}

export async function uploadFile(api: UploadApi, localPath: string, target: UploadTarget, opts: UploadOptions = {}): Promise<UploadResult> {
  const fh = await open(localPath, 'r');
  try {
    const start = await fh.stat();
    if (!start.isFile()) throw new ApiError({ code: 'NOT_A_FILE', status: 0, message: `${localPath} is not a regular file` });
    const chunks = await cutFile(fh, localPath, start.size);
    await checkUnchanged(localPath, start);
    const hashes = chunks.map((c) => c.hash);
    const contentHash = manifestHash(hashes);
    const file: CommitFile = 'itemId' in target
      ? { itemId: target.itemId, ifMatch: target.ifMatch, chunks: hashes, size: start.size }
      : { parentId: target.parentId, name: target.name, mustNotExist: true, chunks: hashes, size: start.size };

    let session = await openSession(api);
    let committed = false;
    let sent = 0;
    const maxAttempts = Math.max(1, opts.maxAttempts ?? 5);
    try {
      for (let attempt = 1; ; attempt++) {
        let phase: 'send' | 'commit' = 'send';
        try {
          if (chunks.length > 0) {
            const missing = new Set(await api.missing(session, hashes));
            const wanted = chunks.filter((c) => missing.delete(c.hash)); // each missing hash once, in file order
            if (wanted.length > 0) {
              await api.putChunks(session, readChunks(fh, localPath, wanted, (n) => {
                sent += n;
                opts.onProgress?.(sent);
              }));
            }
          }
          await checkUnchanged(localPath, start);
          phase = 'commit';
          const item = await api.commit(session, file);
          committed = true;
          if (item.contentHash !== contentHash || item.size !== start.size) {
            throw new ApiError({
              code: 'CONTENT_MISMATCH', status: 0,
              message: `The server confirmed ${localPath} with content hash ${item.contentHash} (${item.size} bytes), not ${contentHash} (${start.size} bytes) as sent.`,
              details: { itemId: item.id, expected: contentHash, actual: item.contentHash },
            });
          }
          return { item, contentHash, size: start.size };
        } catch (e) {
          if (committed || !(e instanceof ApiError) || e.code === 'LOCAL_FILE_CHANGED' || attempt >= maxAttempts) throw e;
          if (phase === 'commit') {
            if (e.code !== 'CHUNKS_MISSING') throw e; // a chunk went away before the commit: send it again
          } else if (e.code === 'NOT_FOUND') {
            session = await openSession(api); // the session expired or the server restarted; stored chunks stay
          } else if (e.status === 401 && e.code !== 'SESSION_REVOKED') {
            // the token was renewed after the refusal: send again right away
          } else if (isRetryable(e)) {
            await api.backoff(attempt, e);
          } else {
            throw e;
          }
        }
      }
    } finally {
      if (!committed) await api.abandonUpload(session).catch(() => {});
    }
  } finally {
    await fh.close();
  }
}

async function openSession(api: UploadApi): Promise<string> {
  const s = await api.startUpload();
  if (s.chunking.max < CHUNK_MAX || s.chunking.hash !== 'sha256') {
    await api.abandonUpload(s.uploadId).catch(() => {});
    throw new ApiError({ code: 'UNSUPPORTED_CHUNKING', status: 0, message: `The server cuts files differently (${JSON.stringify(s.chunking)}); this client cannot upload to it.` });
  }
  return s.uploadId;
}

/** Cuts and hashes the open file from its start; constant memory (the chunker holds at most one chunk). */
async function cutFile(fh: FileHandle, path: string, expectedSize: number): Promise<ChunkRef[]> {
  const refs: ChunkRef[] = [];
  const digester = new ChunkDigester();
  for await (const piece of pieces(fh)) refs.push(...digester.push(piece));
  refs.push(...digester.finish());
  const last = refs.at(-1);
  const offset = last ? last.offset + last.size : 0;
  if (offset !== expectedSize) throw localFileChanged(path, `read ${offset} bytes of ${expectedSize}`);
  return refs;
}

/** The file in 1 MiB pieces, read into one buffer (the digester keeps nothing of a piece). */
async function* pieces(fh: FileHandle): AsyncGenerator<Uint8Array> {
  let position = 0;
  const buf = Buffer.allocUnsafe(READ_PIECE);
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, READ_PIECE, position);
    if (bytesRead === 0) return;
    position += bytesRead;
    yield buf.subarray(0, bytesRead);
  }
}

/** The wanted chunks, read again from the file and checked against their hashes. */
async function* readChunks(fh: FileHandle, path: string, wanted: ChunkRef[], onSent: (bytes: number) => void): AsyncGenerator<Uint8Array> {
  for (const c of wanted) {
    const buf = Buffer.allocUnsafe(c.size);
    let got = 0;
    while (got < c.size) {
      const { bytesRead } = await fh.read(buf, got, c.size - got, c.offset + got);
      if (bytesRead === 0) throw localFileChanged(path, 'it got shorter');
      got += bytesRead;
    }
    if (chunkHash(buf) !== c.hash) throw localFileChanged(path, `the bytes at ${c.offset} differ`);
    onSent(c.size);
    yield buf;
  }
}

async function checkUnchanged(path: string, start: Stats): Promise<void> {
  let now: Stats;
  try {
    now = await stat(path);
  } catch {
    throw localFileChanged(path, 'it is gone');
  }
  if (now.ino !== start.ino || now.dev !== start.dev) throw localFileChanged(path, 'it was replaced');
  if (now.size !== start.size || now.mtimeMs !== start.mtimeMs) throw localFileChanged(path, 'its size or modification time changed');
}
