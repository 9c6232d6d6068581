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

export interface ByteRange { start: number; end: number }

export interface OpenedContent {
  size: number;
  /** The bytes served: the range, or the whole file. */
  range: ByteRange | null;
  stream: Readable;
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

export class DownloadService {
  private readonly deps: Pick<ServiceDeps, 'db' | 'blobs'>;
  constructor(deps: Pick<ServiceDeps, 'db' | 'blobs'>) {
    this.deps = deps;
  }

  /** Opens a version of a file (the current one by default). */
  async open(item: ItemRow, range: ByteRange | null, versionId?: string): Promise<OpenedContent> {
    if (item.kind !== 'file') throw new CofferError('NOT_A_FILE');
    const vid = versionId ?? item.version_id;
    const version = vid ? await versionRepository.findById(this.deps.db, item.id, vid) : undefined;
    if (!version) throw new CofferError('NOT_FOUND', 'No such version.');
    const manifest = await versionRepository.manifest(this.deps.db, version.id);
    const from = range?.start ?? 0;
    const to = range?.end ?? version.size - 1;
    const parts = manifest.filter((c) => c.offset + c.size > from && c.offset <= to);
    // Fail before the status line if the first chunk is missing; later ones surface as a cut-off stream.
    if (parts.length) await this.requireBlob(parts[0]);
    return { size: version.size, range, stream: Readable.from(this.streamParts(parts, from, to), { objectMode: false }) };
  }

  private async requireBlob(c: ManifestEntry): Promise<void> {
    if (!(await this.deps.blobs.stat(c.blob_key))) throw new CofferError('STORAGE_UNAVAILABLE', 'A stored chunk of this file is missing; run `coffer admin check`.');
  }

  private async *streamParts(parts: ManifestEntry[], from: number, to: number): AsyncGenerator<Buffer> {
    for (const c of parts) {
      const start = Math.max(0, from - c.offset);
      const end = Math.min(c.size - 1, to - c.offset);
      let stream: Readable;
      try {
        stream = await this.deps.blobs.get(c.blob_key, start === 0 && end === c.size - 1 ? undefined : { start, end });
      } catch (e) {
        if (e instanceof BlobNotFoundError) throw new CofferError('STORAGE_UNAVAILABLE', `chunk ${c.seq} missing`);
        throw e;
      }
      for await (const buf of stream) yield buf as Buffer;
    }
  }
}
