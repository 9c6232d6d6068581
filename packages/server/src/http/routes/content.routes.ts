/**
 * File contents: streaming upload and download, by path or by id.
 * Upload bodies are raw bytes of any content type; this plugin replaces the
 * body parsers so nothing buffers or parses them (constant memory).
 * Conditions: `If-Match: <etag>` replaces only that content; `If-None-Match: *`
 * creates only; a stale condition gets 412 VERSION_CONFLICT.
 */
import { Type } from 'typebox';
import type { FastifyRequest } from 'fastify';
import { IdParams, ItemSchema } from '@coffer/protocol';
import { principalOf } from '../auth-hook.ts';
import { itemDto } from '../dto.ts';
import type { UploadConditions } from '../../services/upload.service.ts';
import { errorResponses, NAME_RULE, type RoutePlugin } from './route-context.ts';
import { sendContent } from './send-content.ts';

// No maxLength here: parsePath measures the path in UTF-8 bytes and answers PATH_TOO_LONG.
const PathParams = Type.Object({ '*': Type.String({ description: 'Path from the drive root, at most 4096 bytes of UTF-8' }) });

function conditions(req: FastifyRequest): UploadConditions {
  const len = req.headers['content-length'];
  return {
    ifMatch: req.headers['if-match'],
    mustNotExist: req.headers['if-none-match']?.trim() === '*',
    expectedLength: len !== undefined && /^\d+$/.test(len) ? Number(len) : undefined,
  };
}

export const contentRoutes: RoutePlugin = async (app, s) => {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));

  app.put('/api/v1/content/*', {
    schema: {
      tags: ['content'], summary: 'Upload a file by path (creates or adds a new version)', params: PathParams,
      response: { 200: ItemSchema, 201: ItemSchema, ...errorResponses },
    },
  }, async (req, reply) => {
    const p = principalOf(req);
    const { parent, name } = await s.tree.resolveParentOf(p, req.params['*']);
    const r = await s.upload.upload(p, { parentId: parent.id, parent, name }, req.raw, conditions(req));
    return reply.code(r.created ? 201 : 200).header('etag', itemDto(r.item).etag).send(itemDto(r.item));
  });

  app.get('/api/v1/content/*', {
    schema: { tags: ['content'], summary: 'Download a file by path (Range, ETag, If-None-Match)', params: PathParams },
  }, async (req, reply) => sendContent(req, reply, s.download, await s.tree.resolvePath(principalOf(req), req.params['*'])));

  app.put('/api/v1/items/:id/content', {
    schema: { tags: ['content'], summary: 'Upload a new version of a file', params: IdParams, response: { 200: ItemSchema, ...errorResponses } },
  }, async (req, reply) => {
    const r = await s.upload.upload(principalOf(req), { itemId: req.params.id }, req.raw, conditions(req));
    return reply.header('etag', itemDto(r.item).etag).send(itemDto(r.item));
  });

  app.put('/api/v1/items/:id/children/:name/content', {
    schema: {
      tags: ['content'], summary: 'Upload a file into a folder by name',
      params: Type.Object({ id: Type.String({ maxLength: 64 }), name: Type.String({ description: NAME_RULE }) }),
      response: { 200: ItemSchema, 201: ItemSchema, ...errorResponses },
    },
  }, async (req, reply) => {
    const r = await s.upload.upload(principalOf(req), { parentId: req.params.id, name: req.params.name }, req.raw, conditions(req));
    return reply.code(r.created ? 201 : 200).header('etag', itemDto(r.item).etag).send(itemDto(r.item));
  });

  app.get('/api/v1/items/:id/content', {
    schema: { tags: ['content'], summary: 'Download a file (Range, ETag, If-None-Match)', params: IdParams },
  }, async (req, reply) => sendContent(req, reply, s.download, await s.tree.getLive(principalOf(req), req.params.id)));
};
