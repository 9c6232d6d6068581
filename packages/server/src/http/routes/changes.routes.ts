/** Drive identity and the change feed. */
import { Type } from 'typebox';
import { principalOf } from '../auth-hook.ts';
import { changeDto } from '../dto.ts';
import { errorResponses, type RoutePlugin } from './route-context.ts';

export const changesRoutes: RoutePlugin = (app, s) => {
  app.get('/api/v1/drive', {
    schema: {
      tags: ['sync'], summary: 'Identity of this server and drive, and the current feed position',
      description: 'A client remembers instanceId and rootId: if either changes, it is talking to another server or a new drive, and must not treat an empty listing as "everything was deleted".',
      response: { 200: Type.Object({ instanceId: Type.String(), rootId: Type.String(), cursor: Type.String() }), ...errorResponses },
    },
  }, async (req) => {
    const p = principalOf(req);
    return { instanceId: await s.changes.instanceId(), rootId: p.rootId, cursor: await s.changes.latestCursor(p) };
  });

  app.get('/api/v1/changes', {
    schema: {
      tags: ['sync'], summary: 'Changes after a cursor, in commit order, with deletions as tombstones',
      description: 'cursor=latest starts from now. 410 RESYNC_REQUIRED: list the drive again and continue from the cursor of GET /api/v1/drive taken before listing.',
      querystring: Type.Object({ cursor: Type.String({ minLength: 1, maxLength: 512 }), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 5000 })) }),
      response: {
        200: Type.Object({
          changes: Type.Array(Type.Object({
            position: Type.Number(), op: Type.String(), at: Type.String({ format: 'date-time' }),
            item: Type.Object({
              id: Type.String(), parentId: Type.Union([Type.String(), Type.Null()]), name: Type.String(), kind: Type.String(),
              size: Type.Number(), contentHash: Type.Union([Type.String(), Type.Null()]), etag: Type.String(), rev: Type.Number(),
            }),
          })),
          cursor: Type.String(), hasMore: Type.Boolean(),
        }),
        410: { $ref: 'Error#' }, ...errorResponses,
      },
    },
  }, async (req) => {
    const page = await s.changes.read(principalOf(req), req.query.cursor, req.query.limit ?? 1000);
    return { changes: page.changes.map(changeDto), cursor: page.cursor, hasMore: page.hasMore };
  });
};
