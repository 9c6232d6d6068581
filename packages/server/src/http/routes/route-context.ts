import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Services } from '../../app.ts';

export type Api = FastifyInstance<any, any, any, any, TypeBoxTypeProvider>;
export type RoutePlugin = (app: Api, services: Services) => Promise<void> | void;

/** Error responses every authenticated route can give; listed in the OpenAPI document. */
export const errorResponses = {
  400: { $ref: 'Error#' }, 401: { $ref: 'Error#' }, 404: { $ref: 'Error#' }, 409: { $ref: 'Error#' }, 412: { $ref: 'Error#' },
} as const;

/** Names are checked by the service (INVALID_NAME with a reason), not by the schema, so every door gives the same answer. */
export const NAME_RULE = 'NFC-normalized on the server; at most 255 bytes of UTF-8; no / \\ : * ? " < > | or control characters; no trailing dot or space; not a Windows device name';
