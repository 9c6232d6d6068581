/**
 * Builds the Fastify app: logging, limits, error rendering, auth, metrics,
 * the OpenAPI document, and the route plugins. Adapters stay thin: every
 * route parses, authenticates, calls one service method and maps the result.
 */
import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import cookie from '@fastify/cookie';
import type { Logger } from 'pino';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { ErrorSchema } from '@coffer/protocol';
import type { Services } from '../app.ts';
import type { Config } from '../config/options.ts';
import { installAuth, type Authenticator } from './auth-hook.ts';
import { installErrorHandling, renderClientError, renderFrameworkError } from './error-handler.ts';
import { buildRequestValidator, requestValidatorCompiler } from './validation.ts';
import { installMetrics } from './metrics.ts';
import { authRoutes } from './routes/auth.routes.ts';
import { deviceLoginRoutes } from './routes/device-login.routes.ts';
import { accountRoutes } from './routes/account.routes.ts';
import { devicesRoutes } from './routes/devices.routes.ts';
import { pagesRoutes } from './routes/pages.routes.ts';
import { changesRoutes } from './routes/changes.routes.ts';
import { pushRoutes } from './routes/push.routes.ts';
import { contentRoutes } from './routes/content.routes.ts';
import { itemsRoutes } from './routes/items.routes.ts';
import { systemRoutes } from './routes/system.routes.ts';
import { trashRoutes } from './routes/trash.routes.ts';
import { versionsRoutes } from './routes/versions.routes.ts';
import { uploadsRoutes } from './routes/uploads.routes.ts';

export const API_VERSION = '0.1.0';
const IDLE_TIMEOUT_MS = 120_000;

export async function buildHttpServer(services: Services, authenticator: Authenticator,
  config: Pick<Config, 'maxJsonBodyBytes' | 'maxHeaderBytes' | 'logLevel' | 'trustProxy'>,
  opts: { durable?: () => Promise<void>; logger?: Logger } = {}): Promise<FastifyInstance> {
  const app = Fastify({
    ...(opts.logger ? { loggerInstance: opts.logger as unknown as FastifyBaseLogger } : { logger: { level: config.logLevel, redact: ['req.headers.authorization', 'req.headers.cookie'] } }),
    trustProxy: config.trustProxy,
    genReqId: () => randomUUID(),
    logController: new RequestLog(),
    bodyLimit: config.maxJsonBodyBytes,
    routerOptions: { maxParamLength: 4096 },
    // No cap on a whole request (Node's default 5 minutes would cut off a large upload on a slow link);
    // instead a connection idle for 2 minutes is closed, so a stalled upload ends (see ChunkWriter.record).
    serverFactory: (handler) => createServer({ maxHeaderSize: config.maxHeaderBytes, requestTimeout: 0 }, handler).setTimeout(IDLE_TIMEOUT_MS),
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    frameworkErrors: renderFrameworkError,
    clientErrorHandler: renderClientError,
    // Also as the factory: a plugin that calls addSchema (devices) gets its validator rebuilt from it.
    schemaController: { compilersFactory: { buildValidator: buildRequestValidator } },
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(requestValidatorCompiler);

  installErrorHandling(app);
  // A change is acknowledged only once it is on disk (SQLite group commit; see db/group-sync.ts).
  const durable = opts.durable;
  if (durable) app.addHook('onSend', async (request) => { if (request.method !== 'GET' && request.method !== 'HEAD') await durable(); });
  app.addSchema(ErrorSchema);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Coffer API', version: API_VERSION, description: 'Self-hosted cloud drive. Errors are `{ error: { code, message } }` with stable codes.' },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'Access token from POST /api/v1/auth/login (client: sync)' },
          cookie: { type: 'apiKey', in: 'cookie', name: 'coffer_session', description: 'Browser session; state-changing requests also need X-CSRF-Token' },
          appPassword: { type: 'http', scheme: 'basic', description: 'username and an app password' },
        },
      },
      security: [{ bearer: [] }, { cookie: [] }, { appPassword: [] }],
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
  });
  await app.register(cookie);
  installAuth(app, authenticator);
  const metrics = installMetrics(app, () => services.upload.active);

  const plugins = [systemRoutes(metrics), pagesRoutes, authRoutes, deviceLoginRoutes, accountRoutes, devicesRoutes, itemsRoutes, trashRoutes, versionsRoutes, contentRoutes, uploadsRoutes, changesRoutes, pushRoutes];
  for (const plugin of plugins) await app.register(async (scope) => plugin(scope as never, services));
  return app;
}

/**
 * One log line per request, written when it ends: method, url, client address and port, status and time, as an
 * access log has them. Fastify's default writes two (one on arrival, one at the end); on a busy server of small
 * requests serializing and writing the second line was ~3 % of the CPU. The arrival is logged at debug level.
 * A request whose connection goes away before the response is complete (a client hanging up mid-upload, a push
 * stream closed, a response the server cut off) gets its line too, 'request aborted': Fastify writes none for it.
 * Query-string secrets (a device sign-in code, a token) are left out of every line that names the request.
 * Fastify's other lines (stream errors, errors after the headers went out) stay as they are.
 */
class RequestLog extends LogController {
  override incomingRequest(request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return;
    // Taken now: the socket, and with it the client's address, may be gone when an aborted request is logged.
    const req = loggedRequest(request, request.ip, request.socket.remotePort);
    requests.set(request, req);
    request.log.debug({ req }, 'incoming request');
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) reply.log.info({ req, res: reply, responseTime: reply.elapsedTime }, 'request aborted');
    });
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return;
    const req = requestForLog(request);
    if (error) reply.log.error({ req, res: reply, err: error, responseTime: reply.elapsedTime }, 'request errored');
    else reply.log.info({ req, res: reply, responseTime: reply.elapsedTime }, 'request completed');
  }

  // Fastify's own lines that name the request (its default error handler's, a failed writeHead): without the secrets too.
  override defaultErrorLog(error: Error, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return;
    const req = requestForLog(request);
    if (reply.statusCode >= 500) reply.log.error({ req, res: reply, err: error }, error?.message);
    else reply.log.info({ res: reply, err: error }, error?.message);
  }

  override writeHeadError(error: Error, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return;
    reply.log.warn({ req: requestForLog(request), res: reply, err: error }, error?.message);
  }
}

const requests = new WeakMap<FastifyRequest, ReturnType<typeof loggedRequest>>();
/** As taken on arrival, else now (a request Fastify refused before its arrival was logged). */
const requestForLog = (request: FastifyRequest) => requests.get(request) ?? loggedRequest(request, request.ip, request.socket?.remotePort);

/**
 * Query parameters that carry a secret: the device sign-in code a user types (`/device?code=`, the pending
 * lookup's `userCode`), and any `token`. Their values never reach the log.
 */
const SECRET_QUERY = /([?&](?:code|userCode|token)=)[^&#]*/gi;

/** The request as Fastify's serializer reads it ({ method, url, host, remoteAddress: ip, remotePort }), its secrets left out. */
function loggedRequest(request: FastifyRequest, ip: string | undefined, port: number | undefined) {
  const url = request.url.includes('?') ? request.url.replace(SECRET_QUERY, '$1[Redacted]') : request.url;
  return { method: request.method, url, host: request.host, ip, socket: { remotePort: port } };
}
