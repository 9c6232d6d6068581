/** Version history of a file. */
import { Type } from 'typebox';
import { ItemSchema, VersionSchema } from '@coffer/protocol';
import { principalOf } from '../auth-hook.ts';
import { itemDto, versionDto } from '../dto.ts';
import { errorResponses, type RoutePlugin } from './route-context.ts';
import { sendContent } from './send-content.ts';

const VersionParams = Type.Object({ id: Type.String({ maxLength: 64 }), versionId: Type.String({ maxLength: 64 }) });

export const versionsRoutes: RoutePlugin = (app, s) => {
  app.get('/api/v1/items/:id/versions', {
    schema: {
      tags: ['versions'], summary: 'Versions of a file, newest first', params: Type.Object({ id: Type.String({ maxLength: 64 }) }),
      response: { 200: Type.Object({ versions: Type.Array(VersionSchema) }), ...errorResponses },
    },
  }, async (req) => {
    const { item, versions } = await s.versions.list(principalOf(req), req.params.id);
    return { versions: versions.map((v) => versionDto(v, item.version_id)) };
  });

  app.get('/api/v1/items/:id/versions/:versionId/content', {
    schema: { tags: ['versions'], summary: 'Download one version', params: VersionParams },
  }, async (req, reply) => {
    const { item, version } = await s.versions.get(principalOf(req), req.params.id, req.params.versionId);
    return sendContent(req, reply, s.download, item, version);
  });

  app.post('/api/v1/items/:id/versions/:versionId/restore', {
    schema: { tags: ['versions'], summary: 'Make an earlier version current (adds it as the newest)', params: VersionParams, response: { 200: ItemSchema, ...errorResponses } },
  }, async (req) => itemDto(await s.versions.restore(principalOf(req), req.params.id, req.params.versionId)));
};
