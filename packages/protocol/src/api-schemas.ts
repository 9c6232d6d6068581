/**
 * Request and response shapes of the REST API, as TypeBox schemas. The server
 * validates with them and generates its OpenAPI document from them; clients
 * get the static types.
 */
import { Type, type Static } from 'typebox';

export const ErrorSchema = Type.Object({
  error: Type.Object({
    code: Type.String({ description: 'Stable machine-readable code, see the error table' }),
    message: Type.String(),
    requestId: Type.Optional(Type.String()),
    details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  }),
}, { $id: 'Error' });

export const ItemSchema = Type.Object({
  id: Type.String({ description: 'Stable id: survives rename and move' }),
  parentId: Type.Union([Type.String(), Type.Null()]),
  name: Type.String({ description: 'NFC-normalized name; empty for the root' }),
  kind: Type.Union([Type.Literal('file'), Type.Literal('folder')]),
  size: Type.Number(),
  contentHash: Type.Union([Type.String(), Type.Null()], { description: 'SHA-256 over the chunk digests of the current version' }),
  etag: Type.String({ description: 'Content ETag for If-Match / If-None-Match' }),
  rev: Type.Number({ description: 'Grows on every change; pass as ifRev for conditional metadata changes' }),
  createdAt: Type.String({ format: 'date-time' }),
  modifiedAt: Type.String({ format: 'date-time' }),
  trashedAt: Type.Optional(Type.String({ format: 'date-time' })),
}, { $id: 'Item' });
export type ItemDto = Static<typeof ItemSchema>;

export const ItemPageSchema = Type.Object({
  items: Type.Array(ItemSchema),
  total: Type.Number(),
  nextCursor: Type.Union([Type.String(), Type.Null()]),
});

export const VersionSchema = Type.Object({
  id: Type.String(),
  size: Type.Number(),
  contentHash: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
  current: Type.Boolean(),
});

export const MeSchema = Type.Object({
  id: Type.String(),
  username: Type.String(),
  isAdmin: Type.Boolean(),
  rootId: Type.String(),
  quotaBytes: Type.Number({ description: '0 = unlimited' }),
  usedBytes: Type.Number(),
});

export const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });
export const ListQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 200 })),
  cursor: Type.Optional(Type.String({ maxLength: 64 })),
  sort: Type.Optional(Type.Union([Type.Literal('name'), Type.Literal('modified'), Type.Literal('size')])),
  order: Type.Optional(Type.Union([Type.Literal('asc'), Type.Literal('desc')])),
});
