/**
 * Renders every failure as `{ error: { code, message, requestId } }`.
 * Typed CofferErrors keep their code; Fastify's own errors map to codes from
 * the table; anything else is logged with its stack and answered as a bare
 * INTERNAL error — no stack or internal message ever leaves the server.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CofferError, ERRORS, type ErrorCode } from '@coffer/protocol';

const NOT_JSON = 'The request body is not valid JSON.';
const FASTIFY_CODES: Record<string, { code: ErrorCode; message?: string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { code: 'PAYLOAD_TOO_LARGE' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { code: 'UNSUPPORTED_MEDIA_TYPE' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { code: 'BAD_REQUEST', message: 'The Content-Length header does not match the body.' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { code: 'BAD_REQUEST', message: NOT_JSON },
  FST_ERR_CTP_INVALID_JSON_BODY: { code: 'BAD_REQUEST', message: NOT_JSON },
  FST_ERR_VALIDATION: { code: 'VALIDATION_FAILED' },
  // Raised by the router before any route runs (see frameworkErrors in http-server.ts).
  FST_ERR_BAD_URL: { code: 'BAD_REQUEST', message: 'The URL is not validly percent-encoded.' },
  FST_ERR_MAX_PARAM_LENGTH: { code: 'BAD_REQUEST', message: 'A part of the URL is longer than the server allows.' },
};

export function toCofferError(err: unknown): CofferError | null {
  if (err instanceof CofferError) return err;
  const fe = err as FastifyError;
  if (fe?.validation) return new CofferError('VALIDATION_FAILED', `Invalid request: ${fe.message}`);
  const known = fe?.code ? FASTIFY_CODES[fe.code] : undefined;
  if (known) return new CofferError(known.code, known.message);
  if (fe instanceof SyntaxError && (fe as { statusCode?: number }).statusCode === 400) return new CofferError('BAD_REQUEST', NOT_JSON);
  // PostgreSQL refuses text holding U+0000 ("invalid byte sequence for encoding UTF8: 0x00"); it can only have come from the request.
  if ((fe as { code?: string })?.code === '22021') return new CofferError('VALIDATION_FAILED', 'The request holds a NUL character, which is not allowed here.');
  return null;
}

export function sendError(reply: FastifyReply, request: FastifyRequest, e: CofferError): FastifyReply {
  if (e.code === 'UNAUTHENTICATED') reply.header('www-authenticate', 'Bearer realm="coffer"');
  return reply.code(e.status).type('application/json').send({
    error: { code: e.code, message: e.message, requestId: request.id, ...(e.details ? { details: e.details } : {}) },
  });
}

/** Fastify's `frameworkErrors` option: router failures (bad percent-encoding, over-long params) in the same shape. */
export function renderFrameworkError(err: unknown, request: FastifyRequest, reply: FastifyReply): void {
  const known = toCofferError(err);
  if (!known) request.log.error({ err }, 'unhandled framework error');
  sendError(reply, request, known ?? new CofferError('INTERNAL', ERRORS.INTERNAL.message));
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err, request, reply) => {
    const known = toCofferError(err);
    if (known) {
      if (known.status >= 500) request.log.warn({ code: known.code }, known.message);
      return sendError(reply, request, known);
    }
    if (request.raw.destroyed && isClientAbort(err)) {
      // The client went away mid-request (an upload cut off): nothing to answer, nothing went wrong here.
      request.log.info({ code: (err as NodeJS.ErrnoException)?.code }, 'client closed the connection mid-request');
      reply.raw.destroy();
      return;
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

/**
 * Errors Node's HTTP parser raises before any route runs (headers too large,
 * malformed requests, timeouts), written straight to the socket in the same
 * `{ error: { code, message } }` shape.
 */
export function renderClientError(err: NodeJS.ErrnoException, socket: import('node:stream').Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) return;
  const code: ErrorCode = err.code === 'HPE_HEADER_OVERFLOW' ? 'HEADERS_TOO_LARGE'
    : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'REQUEST_TIMEOUT' : 'BAD_REQUEST';
  const { status, message } = ERRORS[code];
  const body = JSON.stringify({ error: { code, message: code === 'BAD_REQUEST' ? 'The request is not valid HTTP.' : message } });
  socket.end(`HTTP/1.1 ${status} ${code.replace(/_/g, ' ')}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

function isClientAbort(err: unknown): boolean {
  const e = err as NodeJS.ErrnoException;
  return e?.code === 'ECONNRESET' || e?.code === 'ERR_STREAM_PREMATURE_CLOSE' || e?.message === 'aborted';
}
