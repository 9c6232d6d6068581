/**
 * The chunk protocol (docs/sync-protocol.md): upload sessions, "which chunks
 * do you lack", framed multi-chunk uploads and conditional manifest commits.
 * The chunks route streams its raw body (its own scope replaces the body
 * parsers, as content.routes.ts does); the others take JSON.
 */
import { Type } from 'typebox';
import { CofferError, IdParams, ItemSchema } from '@coffer/protocol';
import { principalOf } from '../auth-hook.ts';
import { itemDto } from '../dto.ts';
import { CHUNKING, MAX_BATCH_FILES, MAX_COMMIT_CHUNKS, MAX_MISSING_QUERY, type CommitFile } from '../../services/upload-session.service.ts';
import { errorResponses, NAME_RULE, type RoutePlugin } from './route-context.ts';

const Hash = Type.String({ pattern: '^[0-9a-f]{64}$', description: 'SHA-256 of a chunk, lowercase hex' });
/** JSON bodies of commits can be large (a manifest of 100,000 hashes is ~6.7 MB). */
const COMMIT_BODY_LIMIT = 32 << 20;

const FileCommit = Type.Object({
  parentId: Type.Optional(Type.String({ maxLength: 64, description: 'Folder of a file named by name (with name)' })),
  name: Type.Optional(Type.String({ description: NAME_RULE })),
  itemId: Type.Optional(Type.String({ maxLength: 64, description: 'An existing file to give a new version (instead of parentId + name)' })),
  ifMatch: Type.Optional(Type.String({ maxLength: 512, description: 'The content ETag this commit replaces; stale → 412 VERSION_CONFLICT with details.currentEtag' })),
  mustNotExist: Type.Optional(Type.Boolean({ description: 'Create only: an existing file → 412 VERSION_CONFLICT' })),
  chunks: Type.Array(Hash, { maxItems: MAX_COMMIT_CHUNKS, description: 'The manifest: chunk hashes in file order' }),
  size: Type.Integer({ minimum: 0, description: 'File size: must equal the sum of the chunk sizes' }),
}, { additionalProperties: false });

const Session = Type.Object({
  uploadId: Type.String(),
  expiresAt: Type.String({ format: 'date-time', description: 'Extended by every request of the session' }),
  chunking: Type.Object({
    algorithm: Type.String(), min: Type.Integer(), avg: Type.Integer(), max: Type.Integer(), normalization: Type.Integer(), hash: Type.String(),
  }, { description: 'The cut every client must use (FastCDC, see chunker.ts); the server does not re-cut' }),
});

const FileResult = Type.Object({
  status: Type.Integer({ description: 'The HTTP status this file would have had on its own: 201 created, 200 updated, else an error status' }),
  item: Type.Optional(ItemSchema),
  error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String(), details: Type.Optional(Type.Record(Type.String(), Type.Unknown())) })),
});

export const uploadsRoutes: RoutePlugin = async (app, s) => {
  app.post('/api/v1/uploads', {
    schema: {
      tags: ['sync'], summary: 'Start an upload session of the chunk protocol',
      response: { 201: Session, ...errorResponses },
    },
  }, async (req, reply) => {
    const r = await s.uploadSessions.create(principalOf(req));
    return reply.code(201).send({ uploadId: r.uploadId, expiresAt: new Date(r.expiresAt).toISOString(), chunking: { ...CHUNKING } });
  });

  app.delete('/api/v1/uploads/:id', {
    schema: { tags: ['sync'], summary: 'Abandon an upload session (its uncommitted chunks go to the collector)', params: IdParams, response: { 204: Type.Null(), ...errorResponses } },
  }, async (req, reply) => {
    await s.uploadSessions.abandon(principalOf(req), req.params.id);
    return reply.code(204).send(null);
  });

  app.post('/api/v1/uploads/:id/missing', {
    schema: {
      tags: ['sync'], summary: 'Which of these chunks does my drive lack? (the others are kept for this session)', params: IdParams,
      body: Type.Object({ hashes: Type.Array(Hash, { maxItems: MAX_MISSING_QUERY }) }, { additionalProperties: false }),
      response: { 200: Type.Object({ missing: Type.Array(Type.String()) }), ...errorResponses },
    },
    bodyLimit: 2 << 20,
  }, async (req) => ({ missing: await s.uploadSessions.missing(principalOf(req), req.params.id, req.body.hashes) }));

  app.post('/api/v1/uploads/:id/commit', {
    schema: {
      tags: ['sync'], summary: 'Commit a file from chunks (conditional, atomic); ends the session on success', params: IdParams,
      body: Type.Object({ ...FileCommit.properties, keepSession: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
      response: { 200: ItemSchema, 201: ItemSchema, ...errorResponses },
    },
    bodyLimit: COMMIT_BODY_LIMIT,
  }, async (req, reply) => {
    const { keepSession, ...file } = req.body;
    const [r] = await s.uploadSessions.commit(principalOf(req), req.params.id, [file as CommitFile], { keepSession });
    if (!r.ok) throw r.error;
    return reply.code(r.created ? 201 : 200).header('etag', itemDto(r.item).etag).send(itemDto(r.item));
  });

  app.post('/api/v1/uploads/:id/commit-batch', {
    schema: {
      tags: ['sync'], summary: 'Commit many files in one request, each conditional and all-or-nothing on its own',
      description: 'Per-file results in request order. The session ends when every file succeeded (unless keepSession).',
      params: IdParams,
      body: Type.Object({
        files: Type.Array(FileCommit, { minItems: 1, maxItems: MAX_BATCH_FILES }),
        keepSession: Type.Optional(Type.Boolean()),
      }, { additionalProperties: false }),
      response: { 200: Type.Object({ results: Type.Array(FileResult) }), ...errorResponses },
    },
    bodyLimit: COMMIT_BODY_LIMIT,
  }, async (req) => {
    const outcomes = await s.uploadSessions.commit(principalOf(req), req.params.id, req.body.files as CommitFile[], { keepSession: req.body.keepSession });
    return {
      results: outcomes.map((o) => o.ok
        ? { status: o.created ? 201 : 200, item: itemDto(o.item) }
        : { status: o.error.status, error: { code: o.error.code, message: o.error.message, ...(o.error.details ? { details: o.error.details } : {}) } }),
    };
  });

  // Raw frames: this scope takes application/octet-stream bodies unparsed.
  await app.register(async (raw) => {
    raw.removeAllContentTypeParsers();
    raw.addContentTypeParser('application/octet-stream', (_req, _payload, done) => done(null, undefined));
    raw.put('/api/v1/uploads/:id/chunks', {
      schema: {
        tags: ['sync'], summary: 'Upload chunks: the body is frames of [4-byte big-endian length][chunk bytes], each 1 byte to 1 MiB',
        description: 'Content-Type: application/octet-stream. Answers the SHA-256 of every chunk stored (or already held), once each is durable and kept for this session. A body cut off or malformed keeps its complete frames (400 details.stored).',
        params: IdParams,
        response: { 200: Type.Object({ stored: Type.Array(Type.String()) }), ...errorResponses },
      },
    }, async (req) => {
      if (req.headers['content-type'] === undefined) throw new CofferError('UNSUPPORTED_MEDIA_TYPE', 'Send chunks as application/octet-stream.');
      return { stored: await s.uploadSessions.putChunks(principalOf(req), (req.params as { id: string }).id, req.raw) };
    });
  });
};
