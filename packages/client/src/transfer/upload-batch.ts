/**
 * Uploads many small files with a handful of requests, as the chunk
 * protocol intends (docs/sync-protocol.md): one session, one `missing` for
 * every chunk of every file, one framed body with the chunks the drive
 * lacks, one `commit-batch` in which each file is conditional and
 * all-or-nothing on its own. A file counts as uploaded only if the server
 * confirms the content hash computed here; a file that changed while it
 * was read is left out (the next round picks it up).
 *
 * Files are read whole, so callers batch only small ones (see SMALL_FILE).
 */
import { readFile, stat } from 'node:fs/promises';
import { cutAll } from '@coffer/protocol/chunker.ts';
import { chunkHash, manifestHash } from '@coffer/protocol/content-hash.ts';
import { ApiError } from '../remote/api-error.ts';
import type { ApiClient } from '../remote/api-client.ts';
import type { CommitFile, RemoteItem } from '../remote/types.ts';
import type { UploadTarget } from '../remote/upload-file.ts';

/** Files up to this size are batched; larger ones go through uploadFile one by one (constant memory). */
export const SMALL_FILE = 4 * 1024 * 1024;
/** One batch holds at most this many files or bytes. */
export const BATCH_FILES = 1000;
export const BATCH_BYTES = 32 * 1024 * 1024;

export interface BatchFile {
  key: string;
  path: string;
  target: UploadTarget;
}

export type BatchResult =
  | { key: string; ok: true; item: RemoteItem; contentHash: string }
  | { key: string; ok: false; error: ApiError };

export type BatchApi = Pick<ApiClient, 'startUpload' | 'missing' | 'putChunks' | 'commitBatch' | 'abandonUpload'>;

interface Prepared {
  file: BatchFile;
  commit: CommitFile;
  contentHash: string;
  chunks: { hash: string; data: Uint8Array }[];
}

export async function uploadBatch(api: BatchApi, files: BatchFile[]): Promise<BatchResult[]> {
  const results = new Map<string, BatchResult>();
  const prepared: Prepared[] = [];
  for (const file of files) {
    try {
      prepared.push(await prepare(file));
    } catch (e) {
      results.set(file.key, { key: file.key, ok: false, error: asApiError(e, file.path) });
    }
  }
  if (prepared.length) {
    const { uploadId } = await api.startUpload();
    let ended = false;
    try {
      const byHash = new Map<string, Uint8Array>();
      for (const p of prepared) for (const c of p.chunks) byHash.set(c.hash, c.data);
      const missing = await api.missing(uploadId, [...byHash.keys()]);
      if (missing.length) await api.putChunks(uploadId, missing.map((h) => byHash.get(h)!));
      const committed = await api.commitBatch(uploadId, prepared.map((p) => p.commit));
      ended = committed.every((r) => r.item !== undefined);
      committed.forEach((r, i) => {
        const p = prepared[i];
        if (r.item && r.item.contentHash === p.contentHash) results.set(p.file.key, { key: p.file.key, ok: true, item: r.item, contentHash: p.contentHash });
        else if (r.item) results.set(p.file.key, { key: p.file.key, ok: false, error: new ApiError({ code: 'CONTENT_MISMATCH', status: 0, message: `the server confirmed ${p.file.path} with another content hash` }) });
        else results.set(p.file.key, { key: p.file.key, ok: false, error: r.error ?? new ApiError({ code: 'INTERNAL', status: r.status, message: 'commit failed' }) });
      });
    } finally {
      if (!ended) await api.abandonUpload(uploadId).catch(() => {});
    }
  }
  return files.map((f) => results.get(f.key)!);
}

async function prepare(file: BatchFile): Promise<Prepared> {
  const before = await stat(file.path);
  const data = await readFile(file.path);
  const after = await stat(file.path);
  if (before.size !== after.size || before.mtimeMs !== after.mtimeMs || data.length !== after.size) {
    throw new ApiError({ code: 'LOCAL_FILE_CHANGED', status: 0, message: `${file.path} changed while it was read` });
  }
  const chunks: { hash: string; data: Uint8Array }[] = [];
  let at = 0;
  for (const length of cutAll(data)) {
    const piece = data.subarray(at, at + length);
    chunks.push({ hash: chunkHash(piece), data: piece });
    at += length;
  }
  const hashes = chunks.map((c) => c.hash);
  const commit: CommitFile = 'itemId' in file.target
    ? { itemId: file.target.itemId, ifMatch: file.target.ifMatch, chunks: hashes, size: data.length }
    : { parentId: file.target.parentId, name: file.target.name, mustNotExist: true, chunks: hashes, size: data.length };
  return { file, commit, contentHash: manifestHash(hashes), chunks };
}

function asApiError(e: unknown, path: string): ApiError {
  if (e instanceof ApiError) return e;
  const code = (e as NodeJS.ErrnoException).code;
  return new ApiError({ code: code === 'ENOENT' ? 'LOCAL_FILE_CHANGED' : 'UNREADABLE', status: 0, message: `${path}: ${(e as Error).message}` });
}
