/** The signed-in user's own security settings: password, two-factor authentication, and audit log. */
import { Type } from 'typebox';
import { CofferError } from '@coffer/protocol';
import { originOf, principalOf } from '../auth-hook.ts';
import { errorResponses, type RoutePlugin } from './route-context.ts';

const errors = { ...errorResponses, 403: { $ref: 'Error#' }, 429: { $ref: 'Error#' } } as const;
const Factor = Type.Object({ code: Type.Optional(Type.String({ maxLength: 12 })), recoveryCode: Type.Optional(Type.String({ maxLength: 40 })) }, { additionalProperties: false });
const Codes = Type.Object({ recoveryCodes: Type.Array(Type.String(), { description: 'Shown this once; each works once' }) });
export const AuditPage = Type.Object({
  events: Type.Array(Type.Object({
    id: Type.String(), at: Type.Number(), type: Type.String(), deviceId: Type.Union([Type.String(), Type.Null()]), sessionId: Type.Union([Type.String(), Type.Null()]),
    ip: Type.Union([Type.String(), Type.Null()]), userAgent: Type.Union([Type.String(), Type.Null()]), detail: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
  })),
  nextCursor: Type.Union([Type.String(), Type.Null()]),
});
export const AuditQuery = Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })), cursor: Type.Optional(Type.String({ maxLength: 200 })) });

function factorOf(body: { code?: string; recoveryCode?: string }) {
  if ((body.code === undefined) === (body.recoveryCode === undefined)) throw new CofferError('VALIDATION_FAILED', 'Send either code or recoveryCode.');
  return body;
}

export const accountRoutes: RoutePlugin = (app, s) => {
  app.post('/api/v1/account/password', {
    schema: {
      tags: ['account'], summary: 'Change my password; other sessions are signed out unless keepOtherSessions',
      body: Type.Object({ currentPassword: Type.String({ maxLength: 1024 }), newPassword: Type.String({ maxLength: 1024 }), keepOtherSessions: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
      response: { 200: Type.Object({ otherSessionsSignedOut: Type.Integer() }), ...errors },
    },
  }, async (req) => {
    const p = principalOf(req);
    const n = await s.passwords.change(p.userId, p.sessionId, req.body.currentPassword, req.body.newPassword, req.body.keepOtherSessions === true, originOf(req));
    return { otherSessionsSignedOut: n };
  });

  app.get('/api/v1/account/2fa', {
    config: { allow: ['mfa-enrollment'] },
    schema: { tags: ['account'], summary: 'Whether two-factor authentication is on, and recovery codes left', response: { 200: Type.Object({ enabled: Type.Boolean(), recoveryCodesLeft: Type.Integer() }), ...errors } },
  }, async (req) => s.mfa.status(principalOf(req).userId));

  app.post('/api/v1/account/2fa/setup', {
    config: { allow: ['mfa-enrollment'] },
    schema: {
      tags: ['account'], summary: 'Start turning on TOTP: a secret and otpauth:// URI (for a QR code) for the authenticator app',
      response: { 200: Type.Object({ secret: Type.String(), otpauthUri: Type.String(), issuer: Type.String(), account: Type.String(), digits: Type.Integer(), period: Type.Integer(), algorithm: Type.String() }), ...errors },
    },
  }, async (req) => s.mfa.setup(principalOf(req).userId));

  app.post('/api/v1/account/2fa/enable', {
    config: { allow: ['mfa-enrollment'] },
    schema: {
      tags: ['account'], summary: 'Finish turning on TOTP with a first code; returns 10 recovery codes, shown once',
      body: Type.Object({ code: Type.String({ maxLength: 12 }) }, { additionalProperties: false }), response: { 200: Codes, ...errors },
    },
  }, async (req) => {
    const p = principalOf(req);
    const recoveryCodes = await s.mfa.enable(p.userId, req.body.code, originOf(req), p.sessionId);
    const u = await s.users.findById(p.userId);
    if (u) s.notices.twoFactorChanged(u, true);
    return { recoveryCodes };
  });

  app.post('/api/v1/account/2fa/disable', {
    schema: { tags: ['account'], summary: 'Turn two-factor authentication off (needs a current code or a recovery code)', body: Factor, response: { 204: Type.Null(), ...errors } },
  }, async (req, reply) => {
    const p = principalOf(req);
    await s.mfa.disable(p.userId, factorOf(req.body), originOf(req), p.sessionId);
    const u = await s.users.findById(p.userId);
    if (u) s.notices.twoFactorChanged(u, false);
    return reply.code(204).send(null);
  });

  app.post('/api/v1/account/2fa/recovery-codes', {
    schema: { tags: ['account'], summary: 'Replace my recovery codes (the old set stops working); needs a current code', body: Factor, response: { 200: Codes, ...errors } },
  }, async (req) => {
    const p = principalOf(req);
    return { recoveryCodes: await s.mfa.regenerateRecoveryCodes(p.userId, factorOf(req.body), originOf(req), p.sessionId) };
  });

  app.get('/api/v1/account/audit', {
    schema: { tags: ['account'], summary: 'My security events, newest first', querystring: AuditQuery, response: { 200: AuditPage, ...errors } },
  }, async (req) => s.audit.list(principalOf(req).userId, req.query.limit ?? 100, req.query.cursor));

  app.get('/api/v1/admin/users/:username/audit', {
    schema: {
      tags: ['admin'], summary: 'Any user\'s security events (administrators only)',
      params: Type.Object({ username: Type.String({ maxLength: 254 }) }), querystring: AuditQuery, response: { 200: AuditPage, ...errors },
    },
  }, async (req) => {
    if (!principalOf(req).isAdmin) throw new CofferError('FORBIDDEN', 'Only administrators can read other users\' audit logs.');
    return s.audit.listForUsername(req.params.username, req.query.limit ?? 100, req.query.cursor);
  });
};
