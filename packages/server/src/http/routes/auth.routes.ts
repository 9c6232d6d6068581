/** Signing in and out: sign-up, password (+ second factor), token refresh, sign-out, password reset. */
import { Type } from 'typebox';
import { CofferError, MeSchema } from '@coffer/protocol';
import { clearSessionCookie, credentialOf, DEVICE_COOKIE, originOf, principalOf, setSessionCookies } from '../auth-hook.ts';
import { csrfTokenFor } from '../../services/accounts/secrets.ts';
import type { SignInOutcome } from '../../services/accounts/sign-in.service.ts';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { errorResponses, type RoutePlugin } from './route-context.ts';

// No NUL: no login holds one, and PostgreSQL cannot store one (it would fail the throttle bookkeeping with a 500).
const Login = Type.String({ minLength: 1, maxLength: 254, pattern: '^[^\\u0000]*$', description: 'Username or e-mail address' });
/** A name shown in device lists: no control characters. */
export const NO_CONTROL_CHARACTERS = '^[^\\u0000-\\u001F\\u007F]*$';
const Password = Type.String({ maxLength: 1024 });
const SignInBody = Type.Object({
  login: Login,
  password: Password,
  client: Type.Optional(Type.Union([Type.Literal('browser'), Type.Literal('sync')], { description: 'browser: a session cookie (with CSRF token); sync (default): bearer access + refresh tokens' })),
  remember: Type.Optional(Type.Boolean({ description: '"Keep me signed in" (browsers). Without it the session ends with the browser and after a short idle time.' })),
  deviceName: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: NO_CONTROL_CHARACTERS })),
  platform: Type.Optional(Type.String({ maxLength: 100, pattern: NO_CONTROL_CHARACTERS })),
  deviceKey: Type.Optional(Type.String({ maxLength: 200, description: 'The key this device got at its last sign-in: it keeps its entry in the devices list' })),
}, { additionalProperties: false });

export const SignInResult = Type.Object({
  status: Type.Union([Type.Literal('signed-in'), Type.Literal('mfa-required')]),
  challenge: Type.Optional(Type.String({ description: 'mfa-required: send it with a code to /api/v1/auth/login/2fa' })),
  challengeExpiresAt: Type.Optional(Type.Number()),
  user: Type.Optional(Type.Object({ id: Type.String(), username: Type.String() })),
  session: Type.Optional(Type.Object({
    id: Type.String(), deviceId: Type.String(), deviceName: Type.String(), kind: Type.String(), persistent: Type.Boolean(),
    idleTimeoutSeconds: Type.Number({ description: '0: never idles out' }), mfaEnrollmentRequired: Type.Boolean(),
  })),
  deviceKey: Type.Optional(Type.String({ description: 'sync clients: keep it and send it at the next sign-in' })),
  accessToken: Type.Optional(Type.String()),
  refreshToken: Type.Optional(Type.String()),
  accessExpiresAt: Type.Optional(Type.Number()),
  csrfToken: Type.Optional(Type.String({ description: 'browsers: send as X-CSRF-Token on every state-changing request' })),
});

const TokenPair = Type.Object({ accessToken: Type.String(), refreshToken: Type.String(), accessExpiresAt: Type.Number() });
export const publicRoute = { tags: ['auth'], security: [] }; // security: [] overrides the document-wide credential requirement
export const authErrors = { ...errorResponses, 403: { $ref: 'Error#' }, 429: { $ref: 'Error#' } } as const;

/** The answer to a completed (or half-completed) sign-in; a browser also gets its cookies here. Shared with the device login exchange. */
export function signInAnswer(req: FastifyRequest, reply: FastifyReply, outcome: SignInOutcome) {
  if (outcome.kind === 'mfa') return { status: 'mfa-required' as const, challenge: outcome.challenge, challengeExpiresAt: outcome.expiresAt };
  const x = outcome.session;
  const body = {
    status: 'signed-in' as const, user: { id: outcome.user.id, username: outcome.user.username },
    session: { id: x.sessionId, deviceId: x.deviceId, deviceName: x.deviceName, kind: x.kind, persistent: x.persistent, idleTimeoutSeconds: x.idleTimeoutMs / 1000, mfaEnrollmentRequired: x.mfaEnrollmentRequired },
  };
  if (x.cookie) {
    setSessionCookies(req, reply, { secret: x.cookie.secret, maxAgeSeconds: x.persistent ? Math.floor(x.idleTimeoutMs / 1000) : undefined }, x.deviceKey);
    return { ...body, csrfToken: x.cookie.csrfToken };
  }
  return { ...body, deviceKey: x.deviceKey, ...x.tokens };
}

export const authRoutes: RoutePlugin = (app, s) => {
  const answer = signInAnswer;

  app.post('/api/v1/auth/signup', {
    config: { public: true },
    schema: {
      ...publicRoute, summary: 'Create an account (only when the server allows open sign-up)',
      body: Type.Object({ username: Type.String({ maxLength: 63 }), password: Password, email: Type.Optional(Type.String({ maxLength: 254 })) }, { additionalProperties: false }),
      response: { 201: Type.Object({ id: Type.String(), username: Type.String() }), ...authErrors },
    },
  }, async (req, reply) => {
    const user = await s.signIn.signUp(req.body, originOf(req));
    return reply.code(201).send({ id: user.id, username: user.username });
  });

  app.post('/api/v1/auth/login', {
    config: { public: true },
    schema: { ...publicRoute, summary: 'Sign in with username (or e-mail) and password', body: SignInBody, response: { 200: SignInResult, ...authErrors } },
  }, async (req, reply) => {
    const { login, password, client = 'sync', ...rest } = req.body;
    const deviceKey = rest.deviceKey ?? (client === 'browser' ? req.cookies?.[DEVICE_COOKIE] : undefined);
    return answer(req, reply, await s.signIn.signIn({ login, password, client, ...rest, deviceKey }, originOf(req)));
  });

  app.post('/api/v1/auth/login/2fa', {
    config: { public: true },
    schema: {
      ...publicRoute, summary: 'Second sign-in step: a code from the authenticator app, or a recovery code',
      body: Type.Object({ challenge: Type.String({ maxLength: 200 }), code: Type.Optional(Type.String({ maxLength: 12 })), recoveryCode: Type.Optional(Type.String({ maxLength: 40 })) }, { additionalProperties: false }),
      response: { 200: SignInResult, ...authErrors },
    },
  }, async (req, reply) => {
    const { challenge, code, recoveryCode } = req.body;
    if ((code === undefined) === (recoveryCode === undefined)) throw new CofferError('VALIDATION_FAILED', 'Send either code or recoveryCode.');
    return answer(req, reply, await s.signIn.completeMfa(challenge, { code, recoveryCode }, originOf(req)));
  });

  app.post('/api/v1/auth/refresh', {
    config: { public: true },
    schema: {
      ...publicRoute, summary: 'Renew a sync client\'s tokens. A refresh token works once; reusing one ends the session.',
      body: Type.Object({ refreshToken: Type.String({ maxLength: 200 }) }, { additionalProperties: false }),
      response: { 200: TokenPair, ...authErrors },
    },
  }, async (req) => s.sessions.refresh(req.body.refreshToken, originOf(req)));

  app.post('/api/v1/auth/logout', {
    config: { allow: ['wipe', 'mfa-enrollment'] },
    schema: { tags: ['auth'], summary: 'Sign out this session', response: { 204: Type.Null(), ...authErrors } },
  }, async (req, reply) => {
    const p = principalOf(req);
    await s.devices.signOutSession(p, p.sessionId!, originOf(req));
    clearSessionCookie(req, reply);
    return reply.code(204).send(null);
  });

  app.get('/api/v1/auth/session', {
    config: { allow: ['wipe', 'mfa-enrollment'] },
    schema: {
      tags: ['auth'], summary: 'This session: its device, any restriction, and (browsers) the CSRF token',
      response: { 200: Type.Object({
        sessionId: Type.String(), deviceId: Type.String(), via: Type.String(),
        restriction: Type.Union([Type.Literal('wipe'), Type.Literal('mfa-enrollment'), Type.Null()]),
        csrfToken: Type.Optional(Type.String()),
      }), ...authErrors },
    },
  }, async (req) => {
    const p = principalOf(req);
    return { sessionId: p.sessionId!, deviceId: p.deviceId!, via: p.via!, restriction: p.restriction ?? null, ...(p.via === 'cookie' ? { csrfToken: csrfTokenFor(credentialOf(req)!.secret) } : {}) };
  });

  app.post('/api/v1/auth/password/forgot', {
    config: { public: true },
    schema: {
      ...publicRoute, summary: 'Mail a single-use password reset link (valid 30 minutes). The answer is the same whether or not the account exists.',
      body: Type.Object({ login: Login }, { additionalProperties: false }),
      response: { 202: Type.Object({ message: Type.String() }), ...authErrors },
    },
  }, async (req, reply) => {
    await s.passwords.forgot(req.body.login, originOf(req));
    return reply.code(202).send({ message: 'If an account with a mail address matches, a reset link is on its way.' });
  });

  app.post('/api/v1/auth/password/reset', {
    config: { public: true },
    schema: {
      ...publicRoute, summary: 'Choose a new password with a reset link\'s token; signs out every session',
      body: Type.Object({ token: Type.String({ maxLength: 200 }), password: Password }, { additionalProperties: false }),
      response: { 204: Type.Null(), ...authErrors },
    },
  }, async (req, reply) => {
    await s.passwords.reset(req.body.token, req.body.password, originOf(req));
    return reply.code(204).send(null);
  });

  app.get('/api/v1/me', {
    config: { allow: ['mfa-enrollment'] },
    schema: { tags: ['auth'], summary: 'The signed-in user and their storage use', response: { 200: MeSchema, ...authErrors } },
  }, async (req) => {
    const p = principalOf(req);
    const u = await s.users.findById(p.userId);
    if (!u) throw new CofferError('UNAUTHENTICATED');
    return { id: u.id, username: u.username, isAdmin: u.is_admin === 1, rootId: u.root_id, quotaBytes: u.quota_bytes, usedBytes: u.used_bytes };
  });
};
