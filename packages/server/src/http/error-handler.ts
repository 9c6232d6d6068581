/**
 * Renders every failure as `{ error: { code, message, requestId } }`.
 * Typed CofferErrors keep their code; Fastify's own errors map to codes from
 * the table; anything else is logged with its stack and answered as a bare
 * INTERNAL error — no stack or internal message ever leaves the server.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CofferError, ERRORS, type ErrorCode } from '@coffer/protocol';

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BAD_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'BAD_REQUEST',
  FST_ERR_CTP_INVALID_JSON_BODY: 'BAD_REQUEST',
  FST_ERR_VALIDATION: 'VALIDATION_FAILED',
};

export function toCofferError(err: unknown): CofferError | null {
  if (err instanceof CofferError) return err;
  const fe = err as FastifyError;
  if (fe?.validation) return new CofferError('VALIDATION_FAILED', `Invalid request: ${fe.message}`);
  const code = fe?.code ? FASTIFY_CODES[fe.code] : undefined;
  if (code) return new CofferError(code, code === 'BAD_REQUEST' ? 'The request body is not valid JSON.' : undefined);
  if (fe instanceof SyntaxError && (fe as { statusCode?: number }).statusCode === 400) return new CofferError('BAD_REQUEST', 'The request body is not valid JSON.');
  return null;
}

export function sendError(reply: FastifyReply, request: FastifyRequest, e: CofferError): FastifyReply {
  if (e.code === 'UNAUTHENTICATED') reply.header('www-authenticate', 'Bearer realm="coffer"');
  return reply.code(e.status).type('application/json').send({
    error: { code: e.code, message: e.message, requestId: request.id, ...(e.details ? { details: e.details } : {}) },
  });
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err, request, reply) => {
    const known = toCofferError(err);
    if (known) {
      if (known.status >= 500) request.log.warn({ code: known.code }, known.message);
      return sendError(reply, request, known);
    }
    request.log.error({ err }, 'unhandled error');
    if (reply.sent || reply.raw.headersSent) {
      reply.raw.destroy(); // mid-stream failure: cutting the connection is the only honest signal
      return;
    }
    return sendError(reply, request, new CofferError('INTERNAL', ERRORS.INTERNAL.message));
  });
  app.setNotFoundHandler((request, reply) => sendError(reply, request, new CofferError('ROUTE_NOT_FOUND')));
}
