/**
 * Authentication for every route except those marked `config: { public: true }`.
 *
 * A request authenticates with one of: `Authorization: Bearer <access token>`
 * (sync clients, scripts), `Authorization: Basic user:<app password>` (tools
 * that speak only basic auth), or the `coffer_session` cookie (browsers).
 * A cookie-authenticated request that changes state must also carry the
 * session's CSRF token in `X-CSRF-Token` (the cookie alone proves nothing:
 * a browser sends it on cross-site requests too).
 *
 * A restricted session (a device marked for wipe, a user who must first
 * turn on 2FA) reaches only routes that list its restriction in
 * `config.allow`; elsewhere it gets a 403 whose code says what to do.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CofferError } from '@coffer/protocol';
import type { Principal, Restriction } from '../services/context.ts';
import type { Origin } from '../services/accounts/audit.service.ts';
import type { Transport } from '../services/accounts/session.service.ts';
import { csrfTokenFor, safeEqual } from '../services/accounts/secrets.ts';

export const SESSION_COOKIE = 'coffer_session';
export const DEVICE_COOKIE = 'coffer_device';

export interface Authenticator {
  authenticate(secret: string, transport: Transport, origin: Origin, basicUsername?: string): Promise<Principal | null>;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyContextConfig {
    /** Reachable without credentials. */
    public?: boolean;
    /** Restricted sessions that may still use this route. */
    allow?: Restriction[];
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export function installAuth(app: FastifyInstance, authenticator: Authenticator): void {
  app.decorateRequest('principal', null);
  app.addHook('onRequest', async (request) => {
    if (request.routeOptions.config?.public || !request.routeOptions.url) return;
    const credential = credentialOf(request);
    if (!credential) throw new CofferError('UNAUTHENTICATED');
    const principal = await authenticator.authenticate(credential.secret, credential.transport, originOf(request), credential.username);
    if (!principal) throw new CofferError('UNAUTHENTICATED');
    if (credential.transport === 'cookie' && !SAFE_METHODS.has(request.method)) {
      const sent = request.headers['x-csrf-token'];
      if (typeof sent !== 'string' || !safeEqual(sent, csrfTokenFor(credential.secret))) throw new CofferError('CSRF_FAILED');
    }
    if (principal.restriction && !request.routeOptions.config?.allow?.includes(principal.restriction)) {
      throw new CofferError(principal.restriction === 'wipe' ? 'DEVICE_WIPE_REQUESTED' : 'MFA_ENROLLMENT_REQUIRED');
    }
    request.principal = principal;
  });
}

/** The caller of an authenticated route. */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new CofferError('UNAUTHENTICATED');
  return request.principal;
}

/** Where the request came from (the proxy's X-Forwarded-For only when `trustProxy` is on). */
export function originOf(request: FastifyRequest): Origin {
  const ua = request.headers['user-agent'];
  return { ip: request.ip ?? null, userAgent: typeof ua === 'string' ? ua.slice(0, 512) : null };
}

interface Credential {
  secret: string;
  transport: Transport;
  username?: string;
}

/** The credential a request carries: the Authorization header wins over the cookie. */
export function credentialOf(request: FastifyRequest): Credential | null {
  const h = request.headers.authorization;
  if (h) {
    const bearer = /^Bearer\s+(\S{1,512})$/i.exec(h);
    if (bearer) return { secret: bearer[1], transport: 'bearer' };
    const basic = /^Basic\s+([A-Za-z0-9+/=]{1,1400})$/i.exec(h);
    if (basic) {
      const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon > 0) return { secret: decoded.slice(colon + 1), transport: 'basic', username: decoded.slice(0, colon) };
    }
    return null;
  }
  const cookie = request.cookies?.[SESSION_COOKIE];
  return cookie && cookie.length <= 512 ? { secret: cookie, transport: 'cookie' } : null;
}

/** Sets the browser's session cookie: HttpOnly, SameSite=Lax, Secure on HTTPS; a browser-session cookie unless "keep me signed in". */
export function setSessionCookies(request: FastifyRequest, reply: FastifyReply, session: { secret: string; maxAgeSeconds?: number }, deviceKey: string): void {
  const secure = request.protocol === 'https';
  reply.setCookie(SESSION_COOKIE, session.secret, { path: '/', httpOnly: true, sameSite: 'lax', secure, ...(session.maxAgeSeconds ? { maxAge: session.maxAgeSeconds } : {}) });
  // The device key outlives sign-outs, so signing in again on this browser keeps its device entry.
  reply.setCookie(DEVICE_COOKIE, deviceKey, { path: '/api/v1/auth', httpOnly: true, sameSite: 'strict', secure, maxAge: 400 * 24 * 3600 });
}

export function clearSessionCookie(request: FastifyRequest, reply: FastifyReply): void {
  reply.clearCookie(SESSION_COOKIE, { path: '/', httpOnly: true, sameSite: 'lax', secure: request.protocol === 'https' });
}
