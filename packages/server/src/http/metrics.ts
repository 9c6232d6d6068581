/** Prometheus metrics for /metrics: requests and latency by route, bytes in and out, uploads in progress. */
import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function installMetrics(app: FastifyInstance, uploadsInProgress: () => number): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({ name: 'coffer_http_requests_total', help: 'HTTP requests by route and status', labelNames: ['method', 'route', 'status'], registers: [registry] });
  const latency = new Histogram({
    name: 'coffer_http_request_duration_seconds', help: 'HTTP request latency by route', labelNames: ['method', 'route'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30], registers: [registry],
  });
  const bytesIn = new Counter({ name: 'coffer_http_received_bytes_total', help: 'Request body bytes received', registers: [registry] });
  const bytesOut = new Counter({ name: 'coffer_http_sent_bytes_total', help: 'Response body bytes sent', registers: [registry] });
  new Gauge({ name: 'coffer_uploads_in_progress', help: 'Uploads being received now', registers: [registry], collect() { this.set(uploadsInProgress()); } });

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    requests.inc({ method: request.method, route, status: reply.statusCode });
    latency.observe({ method: request.method, route }, reply.elapsedTime / 1000);
    bytesIn.inc(Number(request.headers['content-length'] ?? 0) || 0);
    if (request.method !== 'HEAD') bytesOut.inc(Number(reply.getHeader('content-length') ?? 0) || 0);
  });
  return registry;
}
