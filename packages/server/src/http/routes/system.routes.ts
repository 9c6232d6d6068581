/** Health, metrics and the API description: public, no drive data. */
import type { Registry } from 'prom-client';
import type { RoutePlugin } from './route-context.ts';

export function systemRoutes(metrics: Registry): RoutePlugin {
  return (app) => {
    app.get('/healthz', { config: { public: true }, schema: { hide: true } }, async () => ({ status: 'ok' }));
    app.get('/metrics', { config: { public: true }, schema: { hide: true } }, async (_req, reply) =>
      reply.type(metrics.contentType).send(await metrics.metrics()));
    app.get('/api/openapi.json', { config: { public: true }, schema: { hide: true } }, async () => app.swagger());
  };
}
