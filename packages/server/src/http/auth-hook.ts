/**
 * Authentication for every route except those marked `config: { public: true }`.
 * The hook only asks an Authenticator for a Principal, so the accounts work
 * can swap the stand-in token scheme without touching any route.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { CofferError } from '@coffer/protocol';
import type { Principal } from '../services/context.ts';

export interface Authenticator {
  /** Returns the caller, or null when the request carries no valid credentials. */
  authenticate(request: FastifyRequest): Promise<Principal | null>;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyContextConfig {
    /** Reachable without credentials. */
    public?: boolean;
  }
}

export function installAuth(app: FastifyInstance, authenticator: Authenticator): void {
  app.decorateRequest('principal', null);
  app.addHook('onRequest', async (request) => {
    if (request.routeOptions.config?.public || !request.routeOptions.url) return;
    const principal = await authenticator.authenticate(request);
    if (!principal) throw new CofferError('UNAUTHENTICATED');
    request.principal = principal;
  });
}

/** The caller of an authenticated route. */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new CofferError('UNAUTHENTICATED');
  return request.principal;
}

/** Reads `Authorization: Bearer <token>`. */
export function bearerToken(request: FastifyRequest): string | null {
  const h = request.headers.authorization;
  if (!h) return null;
  const m = /^Bearer\s+(\S{1,512})$/i.exec(h);
  return m ? m[1] : null;
}
