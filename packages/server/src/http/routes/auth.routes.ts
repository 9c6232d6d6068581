/** Stand-in sign-in: username + password for a bearer token. */
import { Type } from 'typebox';
import { CofferError, MeSchema } from '@coffer/protocol';
import { bearerToken, principalOf } from '../auth-hook.ts';
import { errorResponses, type RoutePlugin } from './route-context.ts';

export const authRoutes: RoutePlugin = (app, s) => {
  app.post('/api/v1/auth/token', {
    config: { public: true },
    schema: {
      tags: ['auth'], summary: 'Exchange username and password for a bearer token',
      security: [], // public: overrides the document-wide bearer requirement
      body: Type.Object({ username: Type.String({ maxLength: 256 }), password: Type.String({ maxLength: 1024 }), name: Type.Optional(Type.String({ maxLength: 100 })) }),
      response: { 200: Type.Object({ token: Type.String() }), ...errorResponses },
    },
  }, async (req) => ({ token: await s.auth.issueToken(req.body.username, req.body.password, req.body.name) }));

  app.delete('/api/v1/auth/token', {
    schema: { tags: ['auth'], summary: 'Revoke the token this request carries', response: { 204: Type.Null(), ...errorResponses } },
  }, async (req, reply) => {
    const token = bearerToken(req);
    if (!token) throw new CofferError('UNAUTHENTICATED');
    await s.auth.revoke(token);
    return reply.code(204).send(null);
  });

  app.get('/api/v1/me', {
    schema: { tags: ['auth'], summary: 'The signed-in user and their storage use', response: { 200: MeSchema, ...errorResponses } },
  }, async (req) => {
    const p = principalOf(req);
    const u = await s.users.findById(p.userId);
    if (!u) throw new CofferError('UNAUTHENTICATED');
    return { id: u.id, username: u.username, isAdmin: u.is_admin === 1, rootId: u.root_id, quotaBytes: u.quota_bytes, usedBytes: u.used_bytes };
  });
};
