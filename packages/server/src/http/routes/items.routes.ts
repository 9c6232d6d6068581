/** Items by id: stat, list a folder, create a folder, rename/move, copy, delete to the bin. */
import { Type } from 'typebox';
import { CofferError, IdParams, ItemPageSchema, ItemSchema, ListQuery } from '@coffer/protocol';
import { principalOf } from '../auth-hook.ts';
import { decodeCursor, encodeCursor, itemDto } from '../dto.ts';
import { errorResponses, NAME_RULE, type RoutePlugin } from './route-context.ts';

// No maxLength on paths: parsePath measures them in UTF-8 bytes and answers PATH_TOO_LONG.
const PATH_TEXT = 'Path from the drive root, at most 4096 bytes of UTF-8';

export const itemsRoutes: RoutePlugin = (app, s) => {
  app.get('/api/v1/items/root', {
    schema: { tags: ['items'], summary: 'The root folder of my drive', response: { 200: ItemSchema, ...errorResponses } },
  }, async (req) => {
    const p = principalOf(req);
    return itemDto(await s.tree.getLive(p, p.rootId));
  });

  app.get('/api/v1/items/by-path', {
    schema: {
      tags: ['items'], summary: 'Look an item up by its path from the root',
      querystring: Type.Object({ path: Type.String({ description: PATH_TEXT }) }),
      response: { 200: ItemSchema, ...errorResponses },
    },
  }, async (req) => itemDto(await s.tree.resolvePath(principalOf(req), req.query.path)));

  app.get('/api/v1/items/:id', {
    schema: { tags: ['items'], summary: 'Stat an item', params: IdParams, response: { 200: ItemSchema, ...errorResponses } },
  }, async (req) => itemDto(await s.tree.getLive(principalOf(req), req.params.id)));

  app.get('/api/v1/items/:id/children', {
    schema: { tags: ['items'], summary: 'List a folder, paged and sorted (folders first)', params: IdParams, querystring: ListQuery, response: { 200: ItemPageSchema, ...errorResponses } },
  }, async (req) => {
    const limit = req.query.limit ?? 200;
    const offset = decodeCursor(req.query.cursor);
    const { items, total } = await s.tree.list(principalOf(req), req.params.id, { sort: req.query.sort ?? 'name', order: req.query.order ?? 'asc', limit, offset });
    return { items: items.map(itemDto), total, nextCursor: offset + items.length < total ? encodeCursor(offset + items.length) : null };
  });

  app.post('/api/v1/folders', {
    schema: {
      tags: ['items'], summary: 'Create a folder, by parent id and name or by path',
      body: Type.Object({
        parentId: Type.Optional(Type.String({ maxLength: 64 })),
        name: Type.Optional(Type.String({ description: NAME_RULE })),
        path: Type.Optional(Type.String({ description: PATH_TEXT })),
      }),
      response: { 201: ItemSchema, ...errorResponses },
    },
  }, async (req, reply) => {
    const p = principalOf(req);
    let parentId = req.body.parentId;
    let name = req.body.name;
    if (req.body.path !== undefined) {
      const r = await s.tree.resolveParentOf(p, req.body.path);
      parentId = r.parent.id;
      name = r.name;
    }
    if (!parentId || name === undefined) throw new CofferError('VALIDATION_FAILED', 'Give either parentId and name, or path.');
    return reply.code(201).send(itemDto(await s.tree.createFolder(p, parentId, name)));
  });

  app.patch('/api/v1/items/:id', {
    schema: {
      tags: ['items'], summary: 'Rename and/or move an item (conditional with ifRev)', params: IdParams,
      body: Type.Object({
        name: Type.Optional(Type.String({ description: NAME_RULE })),
        parentId: Type.Optional(Type.String({ maxLength: 64 })),
        ifRev: Type.Optional(Type.Integer({ minimum: 1 })),
      }),
      response: { 200: ItemSchema, ...errorResponses },
    },
  }, async (req) => itemDto(await s.tree.relocate(principalOf(req), req.params.id, req.body)));

  app.post('/api/v1/items/:id/copy', {
    schema: {
      tags: ['items'], summary: 'Copy a file or folder', params: IdParams,
      body: Type.Object({ parentId: Type.String({ maxLength: 64 }), name: Type.Optional(Type.String({ description: NAME_RULE })) }),
      response: { 201: ItemSchema, ...errorResponses },
    },
  }, async (req, reply) => reply.code(201).send(itemDto(await s.tree.copy(principalOf(req), req.params.id, req.body))));

  app.delete('/api/v1/items/:id', {
    schema: {
      tags: ['items'], summary: 'Move an item to the recycle bin', params: IdParams,
      querystring: Type.Object({ ifRev: Type.Optional(Type.Integer({ minimum: 1 })) }),
      response: { 200: ItemSchema, ...errorResponses },
    },
  }, async (req) => itemDto(await s.tree.trash(principalOf(req), req.params.id, req.query.ifRev)));
};
