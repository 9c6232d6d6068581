/**
 * Reads file contents back: the current version or an earlier one, whole or
 * a byte range, streamed chunk by chunk from the blob store.
 */
import { Readable } from 'node:stream';
import { CofferError } from '@coffer/protocol';
import { versionRepository, type ManifestEntry } from '../repositories/version.repository.ts';
import { BlobNotFoundError } from '../blobstore/blob-store.ts';
import type { ItemRow } from '../repositories/item.repository.ts';
import type { ServiceDeps } from './context.ts';

/** Bytes of database-kept chunks one download may hold in memory; beyond, it is streamed. */
const IN_MEMORY_LIMIT = 1 << 20;

export interface ByteRange { start: number; end: number }

/** Bytes [start, end] of a local file; or of `bytes`, when given (a small chunk kept in the database), and then `path` only names it in errors. */
export interface FileRange { path: string; start: number; end: number; bytes?: Uint8Array }

/** Which bytes of which stored chunks make up the requested content. */
export interface ContentPlan {
  size: number;
  /** The bytes served: the range, or the whole file. */
  range: ByteRange | null;
  /** `bytes`: the whole chunk, when the manifest query brought it along (a small chunk of a small file). */
  segments: { key: string; seq: number; start: number; end: number; bytes?: Uint8Array }[];
}

/**
 * Parses a Range header against a size. Returns null for "send it all"
 * (absent, or not a single bytes range — RFC 9110 lets a server ignore it);
 * throws INVALID_RANGE for a range that cannot be satisfied.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | null {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) throw new CofferError('INVALID_RANGE', undefined, { size });
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== '' && Number(m[2]) < start) return null;
  }
  if (start >= size) throw new CofferError('INVALID_RANGE', undefined, { size });
  return { start, end };
}

function manifestBytes(manifest: ManifestEntry[]): number {
  let n = 0;
  for (const c of manifest) n += c.size;
  return n;
}

function missingChunk(): CofferError {
  return new CofferError('STORAGE_UNAVAILABLE', 'A stored chunk of this file is missing; run `coffer admin check`.');
}

export class DownloadService {
  private readonly deps: Pick<ServiceDeps, 'db' | 'blobs'>;
  constructor(deps: Pick<ServiceDeps, 'db' | 'blobs'>) {
    this.deps = deps;
  }

  /**
   * Plans reading a version of a file (the current one by default: the item row already says its size, so only
   * the manifest is read). Does not look at the stored chunks: localFiles() and firstChunkStored() do.
   */
  async plan(item: ItemRow, range: ByteRange | null, versionId?: string): Promise<ContentPlan> {
    if (item.kind !== 'file') throw new CofferError('NOT_A_FILE');
    const vid = versionId ?? item.version_id;
    const version = versionId ? await versionRepository.findById(this.deps.db, item.id, versionId) : vid ? { id: vid, size: item.size } : undefined;
    if (!version) throw new CofferError('NOT_FOUND', 'No such version.');
    // A file small enough to answer from memory brings its database-kept chunks along: one query, not one more per chunk.
    const manifest: (ManifestEntry & { data?: Buffer | null })[] = version.size <= IN_MEMORY_LIMIT
      ? await versionRepository.manifestWithSmallChunks(this.deps.db, version.id)
      : await versionRepository.manifest(this.deps.db, version.id);
    // The item row was read before the manifest: a file purged in between (emptied from the bin) has none left.
    if (!versionId && manifestBytes(manifest) !== version.size) throw new CofferError('NOT_FOUND', 'No such version.');
    const from = range?.start ?? 0;
    const to = range?.end ?? version.size - 1;
    const segments = manifest.filter((c) => c.offset + c.size > from && c.offset <= to).map((c) => ({
      key: c.blob_key, seq: c.seq, start: Math.max(0, from - c.offset), end: Math.min(c.size - 1, to - c.offset),
      ...(c.data ? { bytes: c.data } : {}),
    }));
    return { size: version.size, range, segments };
  }

  /**
   * Fails before the status line if the plan's first chunk is missing (later ones surface as a cut-off response).
   * localFiles() makes the same check itself; a plan streamed from elsewhere, or a HEAD, calls this.
   */
  async firstChunkStored(plan: ContentPlan): Promise<void> {
    const first = plan.segments[0];
    if (!first || first.bytes) return;
    // A pack cut short before the chunk's end answers a smaller size, not null.
    const st = await this.deps.blobs.stat(first.key);
    if (!st || st.size <= first.end) throw missingChunk();
  }

  /**
   * Local file paths of the plan's chunks, when the blob store keeps them on local disk; small chunks kept in the
   * database come along as their bytes (a big file's last chunk often is one). Null: stream the plan instead.
   * A missing first chunk is STORAGE_UNAVAILABLE, as in firstChunkStored().
   */
  async localFiles(plan: ContentPlan): Promise<FileRange[] | null> {
    const { blobs } = this.deps;
    if (!blobs.capabilities.localFiles || !blobs.localFile) return null;
    const files: FileRange[] = [];
    let inMemory = 0;
    for (const s of plan.segments) {
      const file = blobs.localFile(s.key);
      if (file !== null) {
        if (files.length === 0) await this.firstChunkStored(plan);
        files.push({ path: file.path, start: file.offset + s.start, end: file.offset + s.end });
        continue;
      }
      inMemory += s.end - s.start + 1;
      if (inMemory > IN_MEMORY_LIMIT) return null;
      files.push({ path: s.key, start: s.start, end: s.end, bytes: s.bytes ?? await this.read(s.key, s.seq) }); // a missing blob throws here
    }
    return files;
  }

  /** A whole blob into memory (before any byte of the response is sent). */
  private async read(key: string, seq: number): Promise<Uint8Array> {
    const parts: Buffer[] = [];
    for await (const b of await this.open(key, seq)) parts.push(b as Buffer);
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  /** A chunk's blob, or part of it; a missing one is STORAGE_UNAVAILABLE. */
  private async open(key: string, seq: number, range?: { start: number; end: number }): Promise<Readable> {
    try {
      return await this.deps.blobs.get(key, range);
    } catch (e) {
      if (e instanceof BlobNotFoundError) throw new CofferError('STORAGE_UNAVAILABLE', `chunk ${seq} is missing`);
      throw e;
    }
  }

  /** The plan's bytes as one stream, from any blob store. */
  stream(plan: ContentPlan): Readable {
    return Readable.from(this.streamSegments(plan), { objectMode: false });
  }

  private async *streamSegments(plan: ContentPlan): AsyncGenerator<Buffer> {
    for (const s of plan.segments) {
      if (s.bytes) yield Buffer.from(s.bytes.buffer, s.bytes.byteOffset + s.start, s.end - s.start + 1);
      else for await (const buf of await this.open(s.key, s.seq, { start: s.start, end: s.end })) yield buf as Buffer;
    }
  }
}
