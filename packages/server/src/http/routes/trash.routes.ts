/** The recycle bin: list, restore, purge one, empty. */
import { Type } from 'typebox';
import { IdParams, ItemSchema } from '@coffer/protocol';
import { principalOf } from '../auth-hook.ts';
import { decodeCursor, encodeCursor, itemDto } from '../dto.ts';
import { errorResponses, type RoutePlugin } from './route-context.ts';

export const trashRoutes: RoutePlugin = (app, s) => {
  app.get('/api/v1/trash', {
    schema: {
      tags: ['trash'], summary: 'Items in the recycle bin, newest first',
      querystring: Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })), cursor: Type.Optional(Type.String({ maxLength: 64 })) }),
      response: { 200: Type.Object({ items: Type.Array(ItemSchema), nextCursor: Type.Union([Type.String(), Type.Null()]) }), ...errorResponses },
    },
  }, async (req) => {
    const limit = req.query.limit ?? 200;
    const offset = decodeCursor(req.query.cursor);
    const items = await s.tree.listTrash(principalOf(req), limit, offset);
    return { items: items.map(itemDto), nextCursor: items.length === limit ? encodeCursor(offset + limit) : null };
  });

  app.post('/api/v1/trash/:id/restore', {
    schema: { tags: ['trash'], summary: 'Restore an item to where it was', params: IdParams, response: { 200: ItemSchema, ...errorResponses } },
  }, async (req) => itemDto(await s.tree.restore(principalOf(req), req.params.id)));

  app.delete('/api/v1/trash/:id', {
    schema: { tags: ['trash'], summary: 'Delete an item in the bin for good', params: IdParams, response: { 204: Type.Null(), ...errorResponses } },
  }, async (req, reply) => {
    await s.tree.purge(principalOf(req), req.params.id);
    return reply.code(204).send(null);
  });

  app.delete('/api/v1/trash', {
    schema: { tags: ['trash'], summary: 'Empty the recycle bin', response: { 200: Type.Object({ purged: Type.Number() }), ...errorResponses } },
  }, async (req) => ({ purged: await s.tree.emptyTrash(principalOf(req)) }));
};
