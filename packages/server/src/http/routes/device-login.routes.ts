/**
 * Device login (RFC 8628 style) for `coffer login`: the client asks for a
 * sign-in request and polls; the user approves it on /device (pages.routes.ts)
 * in a signed-in browser. Protocol: docs/sync-protocol.md, "Device login".
 */
import { Type } from 'typebox';
import { originOf, principalOf } from '../auth-hook.ts';
import { authErrors, NO_CONTROL_CHARACTERS, publicRoute, SignInResult, signInAnswer } from './auth.routes.ts';
import type { RoutePlugin } from './route-context.ts';

const DeviceName = (description: string) => Type.String({ minLength: 1, maxLength: 100, pattern: NO_CONTROL_CHARACTERS, description });
const UserCode = Type.String({ minLength: 1, maxLength: 32, pattern: NO_CONTROL_CHARACTERS, description: 'As shown by the device (XXXX-XXXX); case, spaces and the dash do not matter' });
const errors = { ...authErrors, 410: { $ref: 'Error#' } } as const;

export const deviceLoginRoutes: RoutePlugin = (app, s) => {
  app.post('/api/v1/auth/device', {
    config: { public: true },
    schema: {
      ...publicRoute,
      summary: 'Device login, step 1 (sync client): start a sign-in request that the user approves in a browser',
      body: Type.Object({
        deviceName: DeviceName('Shown to the user on the approval page; the user may change it there'),
        platform: Type.Optional(Type.String({ maxLength: 100, pattern: NO_CONTROL_CHARACTERS })),
      }, { additionalProperties: false }),
      response: {
        200: Type.Object({
          deviceCode: Type.String({ description: 'Secret: poll POST /api/v1/auth/device/token with it; never show it' }),
          userCode: Type.String({ description: 'Show it to the user: XXXX-XXXX, 8 letters from BCDFGHJKLMNPQRSTVWXZ' }),
          verificationUri: Type.String({ description: 'Where the user enters the code: <public URL>/device' }),
          verificationUriComplete: Type.String({ description: 'The same page with the code filled in (for a link or QR code)' }),
          expiresIn: Type.Integer({ description: 'Seconds until the request expires' }),
          interval: Type.Integer({ description: 'Seconds to wait between polls (5)' }),
        }),
        ...errors,
      },
    },
  }, async (req) => s.deviceLogin.start(req.body, originOf(req)));

  app.post('/api/v1/auth/device/token', {
    config: { public: true },
    schema: {
      ...publicRoute,
      summary: 'Device login, step 3 (sync client): poll until approved, then receive the session, once',
      description: 'While pending: 400 AUTHORIZATION_PENDING. Sooner than `interval` after the previous poll: 400 SLOW_DOWN (the interval grows by 5 s, details.interval). '
        + 'Denied: 400 ACCESS_DENIED. Expired: 400 DEVICE_CODE_EXPIRED. Unknown or already exchanged: 400 INVALID_DEVICE_CODE. '
        + 'Approved: 200 with exactly what POST /api/v1/auth/login answers a sync client.',
      body: Type.Object({
        deviceCode: Type.String({ maxLength: 200 }),
        deviceKey: Type.Optional(Type.String({ maxLength: 200, description: 'The key this device got at its last sign-in: it keeps its entry in the devices list' })),
      }, { additionalProperties: false }),
      response: { 200: SignInResult, ...errors },
    },
  }, async (req, reply) => {
    const { session, user } = await s.deviceLogin.exchange(req.body.deviceCode, req.body.deviceKey, originOf(req));
    return signInAnswer(req, reply, { kind: 'session', session, user });
  });

  app.get('/api/v1/auth/device/pending', {
    schema: {
      tags: ['auth'],
      summary: 'Device login, step 2 (browser): what is asking to sign in with this user code',
      querystring: Type.Object({ userCode: UserCode }),
      response: {
        200: Type.Object({
          userCode: Type.String({ description: 'Normalized: XXXX-XXXX' }),
          deviceName: Type.String(), platform: Type.Union([Type.String(), Type.Null()]),
          ip: Type.Union([Type.String(), Type.Null()], { description: 'Where the request came from' }),
          userAgent: Type.Union([Type.String(), Type.Null()]),
          createdAt: Type.Number(), expiresAt: Type.Number(),
        }),
        ...errors,
      },
    },
  }, async (req) => s.deviceLogin.pending(principalOf(req), req.query.userCode, originOf(req)));

  app.post('/api/v1/auth/device/approve', {
    schema: {
      tags: ['auth'],
      summary: 'Device login, step 2 (browser): approve (for my account) or deny the sign-in request with this user code',
      body: Type.Object({
        userCode: UserCode,
        approve: Type.Boolean({ description: 'true: the device signs in to my account; false: it is refused' }),
        deviceName: Type.Optional(DeviceName('The name the device gets in my devices list (default: the one it asked for)')),
      }, { additionalProperties: false }),
      response: {
        200: Type.Object({
          status: Type.Union([Type.Literal('approved'), Type.Literal('denied')]),
          deviceName: Type.String(), platform: Type.Union([Type.String(), Type.Null()]),
        }),
        ...errors,
      },
    },
  }, async (req) => s.deviceLogin.decide(principalOf(req), req.body.userCode, req.body.approve, req.body.deviceName, originOf(req)));
};
