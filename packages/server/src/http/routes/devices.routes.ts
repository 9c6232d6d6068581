/** Devices and sessions of the signed-in user, app passwords, remote wipe, and what a device reports about itself. */
import { Type } from 'typebox';
import { IdParams } from '@coffer/protocol';
import { originOf, principalOf } from '../auth-hook.ts';
import { errorResponses, type RoutePlugin } from './route-context.ts';
import { NO_CONTROL_CHARACTERS } from './auth.routes.ts';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);
const WipeReportSchema = Type.Object({
  removedCount: Type.Integer({ minimum: 0 }),
  removed: Type.Optional(Type.Array(Type.String({ maxLength: 4096 }), { maxItems: 10000 })),
  kept: Type.Array(Type.Object({ path: Type.String({ maxLength: 4096 }), reason: Type.String({ maxLength: 500 }) }, { additionalProperties: false }), { maxItems: 10000, description: 'Files kept because their content was not confirmed in the cloud' }),
}, { additionalProperties: false });
const DeviceSchema = Type.Object({
  id: Type.String(), name: Type.String(), kind: Type.String({ description: 'browser, sync or app_password' }), platform: Nullable(Type.String()),
  current: Type.Boolean({ description: 'The device making this request' }), signedIn: Type.Boolean(),
  createdAt: Type.Number(), lastSeenAt: Type.Number(), ip: Nullable(Type.String()), userAgent: Nullable(Type.String()),
  pendingChanges: Nullable(Type.Integer({ description: 'Local changes not yet uploaded, as the device last reported' })), pendingReportedAt: Nullable(Type.Number()),
  wipe: Nullable(Type.Object({ requestedAt: Type.Number(), fetchedAt: Nullable(Type.Number()), confirmedAt: Nullable(Type.Number()), report: Nullable(WipeReportSchema) })),
  sessions: Type.Array(Type.Object({
    id: Type.String(), kind: Type.String(), current: Type.Boolean(), persistent: Type.Boolean(),
    createdAt: Type.Number(), lastSeenAt: Type.Number(), ip: Nullable(Type.String()), userAgent: Nullable(Type.String()),
  })),
}, { $id: 'Device' });
const errors = { ...errorResponses, 403: { $ref: 'Error#' } } as const;

export const devicesRoutes: RoutePlugin = (app, s) => {
  app.addSchema(DeviceSchema);

  app.get('/api/v1/devices', {
    schema: { tags: ['devices'], summary: 'Every device signed in to my account, with its sessions, last activity and pending changes', response: { 200: Type.Object({ devices: Type.Array(Type.Ref('Device')) }), ...errors } },
  }, async (req) => ({ devices: await s.devices.list(principalOf(req)) }));

  app.delete('/api/v1/devices/:id', {
    schema: { tags: ['devices'], summary: 'Sign a device out and remove it (kept until a pending wipe is confirmed)', params: IdParams, response: { 204: Type.Null(), ...errors } },
  }, async (req, reply) => {
    await s.devices.remove(principalOf(req), req.params.id, originOf(req));
    return reply.code(204).send(null);
  });

  app.post('/api/v1/devices/:id/wipe', {
    schema: {
      tags: ['devices'], summary: 'Ask a device to remove its synced files: it removes only those safely in the cloud, then reports and is signed out',
      params: IdParams, response: { 200: Type.Ref('Device'), ...errors },
    },
  }, async (req) => s.devices.requestWipe(principalOf(req), req.params.id, originOf(req)));

  app.delete('/api/v1/sessions/:id', {
    schema: { tags: ['devices'], summary: 'Sign out one session', params: IdParams, response: { 204: Type.Null(), ...errors } },
  }, async (req, reply) => {
    await s.devices.signOutSession(principalOf(req), req.params.id, originOf(req));
    return reply.code(204).send(null);
  });

  app.post('/api/v1/sessions/sign-out-others', {
    schema: { tags: ['devices'], summary: 'Sign out everywhere except this session', response: { 200: Type.Object({ signedOut: Type.Integer() }), ...errors } },
  }, async (req) => ({ signedOut: await s.devices.signOutOthers(principalOf(req), originOf(req)) }));

  app.post('/api/v1/app-passwords', {
    schema: {
      tags: ['devices'], summary: 'Create a named app password for a tool that only speaks basic auth; the password is shown once',
      body: Type.Object({ name: Type.String({ minLength: 1, maxLength: 100, pattern: NO_CONTROL_CHARACTERS }) }, { additionalProperties: false }),
      response: { 201: Type.Object({ deviceId: Type.String(), name: Type.String(), password: Type.String() }), ...errors },
    },
  }, async (req, reply) => reply.code(201).send(await s.devices.createAppPassword(principalOf(req), req.body.name, originOf(req))));

  app.put('/api/v1/device/pending-changes', {
    schema: {
      tags: ['devices'], summary: 'A sync client reports how many local changes it has not uploaded yet',
      body: Type.Object({ pendingChanges: Type.Integer({ minimum: 0, maximum: 1e9 }) }, { additionalProperties: false }),
      response: { 204: Type.Null(), ...errors },
    },
  }, async (req, reply) => {
    await s.devices.reportPending(principalOf(req), req.body.pendingChanges);
    return reply.code(204).send(null);
  });

  app.get('/api/v1/device/wipe', {
    config: { allow: ['wipe'] },
    schema: {
      tags: ['devices'], summary: 'Whether this device is to be wiped (the first answer that says so is recorded)',
      response: { 200: Type.Object({ wipe: Type.Boolean(), requestedAt: Nullable(Type.Number()) }), ...errors },
    },
  }, async (req) => s.devices.fetchWipe(principalOf(req), originOf(req)));

  app.post('/api/v1/device/wipe/confirm', {
    config: { allow: ['wipe'] },
    schema: {
      tags: ['devices'], summary: 'The device reports what it removed and what it kept; its credentials then stop working',
      body: WipeReportSchema, response: { 204: Type.Null(), ...errors },
    },
  }, async (req, reply) => {
    await s.devices.confirmWipe(principalOf(req), req.body, originOf(req));
    return reply.code(204).send(null);
  });
};
