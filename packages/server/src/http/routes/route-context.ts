import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Services } from '../../app.ts';

export type Api = FastifyInstance<any, any, any, any, TypeBoxTypeProvider>;
export type RoutePlugin = (app: Api, services: Services) => Promise<void> | void;

/** Error responses every authenticated route can give; listed in the OpenAPI document. */
export const errorResponses = {
  400: { $ref: 'Error#' }, 401: { $ref: 'Error#' }, 404: { $ref: 'Error#' }, 409: { $ref: 'Error#' }, 412: { $ref: 'Error#' },
} as const;
