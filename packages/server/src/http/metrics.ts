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
  // Counted on the connection as well as from Content-Length: streamed bodies (chunk uploads, chunked
  // transfer encoding, push streams) have no Content-Length. What the connection carried between a
  // request's headers and the end of its response: the body (with any chunked framing) in, the
  // response (with its headers) out. The socket's first read may already hold the start of the body
  // (all of a small one), so a body is the larger of its Content-Length and what came after that read.
  const bytesIn = new Counter({ name: 'coffer_http_received_bytes_total', help: 'Bytes received after request headers (bodies, chunked framing included)', registers: [registry] });
  const bytesOut = new Counter({ name: 'coffer_http_sent_bytes_total', help: 'Bytes sent in responses (headers and bodies)', registers: [registry] });
  const atStart = new WeakMap<object, { read: number; written: number }>();

  app.addHook('onRequest', async (request) => {
    const socket = request.raw.socket;
    atStart.set(request.raw, { read: socket?.bytesRead ?? 0, written: socket?.bytesWritten ?? 0 });
  });
  new Gauge({ name: 'coffer_uploads_in_progress', help: 'Uploads being received now', registers: [registry], collect() { this.set(uploadsInProgress()); } });

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    requests.inc({ method: request.method, route, status: reply.statusCode });
    latency.observe({ method: request.method, route }, reply.elapsedTime / 1000);
    const start = atStart.get(request.raw);
    const socket = request.raw.socket;
    if (start && socket) {
      bytesIn.inc(Math.max(Number(request.headers['content-length'] ?? 0) || 0, socket.bytesRead - start.read));
      bytesOut.inc(Math.max(0, socket.bytesWritten - start.written));
    }
  });
  return registry;
}
