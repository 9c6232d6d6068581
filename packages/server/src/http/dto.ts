/** Maps stored rows to the API's JSON shapes. */
import { CofferError, type ItemDto } from '@coffer/protocol';
import type { ItemRow } from '../repositories/item.repository.ts';
import type { VersionRow } from '../repositories/version.repository.ts';
import type { ChangeRow } from '../repositories/change.repository.ts';
import { contentEtag } from '../services/upload.service.ts';

const iso = (ms: number) => new Date(ms).toISOString();

export function itemDto(r: ItemRow): ItemDto {
  return {
    id: r.id, parentId: r.parent_id, name: r.name, kind: r.kind, size: r.size, contentHash: r.content_hash,
    etag: contentEtag(r), rev: r.rev, createdAt: iso(r.created_at), modifiedAt: iso(r.modified_at),
    ...(r.trashed_at !== null ? { trashedAt: iso(r.trashed_at) } : {}),
  };
}

export function versionDto(v: VersionRow, currentId: string | null) {
  return { id: v.id, size: v.size, contentHash: v.content_hash, createdAt: iso(v.created_at), current: v.id === currentId };
}

/** Opaque page cursors: today an offset, so clients must not parse them. */
export function encodeCursor(offset: number): string {
  return Buffer.from(`o:${offset}`).toString('base64url');
}
export function decodeCursor(cursor: string | undefined): number {
  if (!cursor) return 0;
  const m = /^o:(\d{1,9})$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!m) throw new CofferError('VALIDATION_FAILED', 'The page cursor is not valid; start again without one.');
  return Number(m[1]);
}

export function changeDto(c: ChangeRow) {
  return {
    position: c.seq, op: c.op, at: iso(c.at),
    item: {
      id: c.item_id, parentId: c.parent_id, name: c.name, kind: c.kind, size: c.size, contentHash: c.content_hash,
      etag: contentEtag({ version_id: c.version_id, id: c.item_id, rev: c.rev }), rev: c.rev,
    },
  };
}
