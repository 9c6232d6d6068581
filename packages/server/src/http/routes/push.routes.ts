/**
 * Push: `GET /api/v1/changes/stream`, a Server-Sent Events stream that tells
 * a connected client its drive changed. It carries positions, never content:
 * the client reads what changed from GET /api/v1/changes with its cursor.
 *   event: ready    data: {"cursor": "...", "position": N}   once, at connect
 *   event: changed  data: {"position": N}                    the feed advanced to N (bursts coalesced)
 *   event: revoked  data: {}                                 the credential was revoked; the stream ends
 *   : ping                                                   a comment every 25 s, so proxies keep it open
 * The stream ends at once when the credential it was opened with is revoked
 * (on any process) and when the server shuts down.
 */
import { Type } from 'typebox';
import { CofferError } from '@coffer/protocol';
import { principalOf } from '../auth-hook.ts';
import { errorResponses, type RoutePlugin } from './route-context.ts';

const HEARTBEAT_MS = 25_000;
/** At most one `changed` per this interval; a burst becomes one event with the last position. */
const COALESCE_MS = 100;
/** A client this far behind is not reading: drop it (it reconnects and resumes from its cursor). */
const MAX_BUFFERED_BYTES = 64 * 1024;

export const pushRoutes: RoutePlugin = (app, s) => {
  // Open streams would keep close() waiting forever: end them first.
  app.addHook('preClose', (done) => {
    s.push.closeAll();
    done();
  });

  app.get('/api/v1/changes/stream', {
    schema: {
      tags: ['sync'], summary: 'Server-Sent Events: be told when the drive changes',
      description: 'text/event-stream. `ready` at connect with the current cursor and position; `changed` with `{"position": N}` within a second of every commit to the drive (bursts coalesced); `revoked` then the end of the stream when the credential is revoked; a `: ping` comment every 25 s. Read the changes themselves from GET /api/v1/changes.',
      response: {
        200: { description: 'An event stream that stays open', content: { 'text/event-stream': { schema: Type.String() } } },
        ...errorResponses,
      },
    },
  }, async (req, reply) => {
    const p = principalOf(req);
    const res = reply.raw;
    const headers = () => ({
      ...(reply.getHeaders() as Record<string, string | number | string[]>),
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no', // nginx: do not buffer the stream
      'x-content-type-options': 'nosniff',
    });
    if (req.method === 'HEAD') {
      reply.hijack();
      res.writeHead(200, headers()).end();
      return reply;
    }

    let started = false;
    let ended = false;
    let refused: 'revoked' | 'shutdown' | undefined; // closed before the stream started
    let latest = 0; // the highest position heard
    let sent = 0; // the highest position told to the client
    let lastSentAt = 0;
    let flushTimer: NodeJS.Timeout | undefined;
    let heartbeat: NodeJS.Timeout | undefined;

    const write = (text: string) => {
      if (ended || res.destroyed) return;
      res.write(text);
      if (res.writableLength > MAX_BUFFERED_BYTES) res.destroy();
    };
    const flush = () => {
      flushTimer = undefined;
      if (!started || latest <= sent) return;
      sent = latest;
      lastSentAt = Date.now();
      write(`event: changed\ndata: ${JSON.stringify({ position: sent })}\n\n`);
    };
    const schedule = () => {
      if (flushTimer || !started || ended) return;
      flushTimer = setTimeout(flush, Math.max(0, lastSentAt + COALESCE_MS - Date.now()));
    };
    const cleanup = () => {
      if (ended) return;
      ended = true;
      clearTimeout(flushTimer);
      clearInterval(heartbeat);
      subscription?.unsubscribe();
    };
    const refuse = (reason: 'revoked' | 'shutdown'): never => {
      cleanup();
      throw new CofferError(reason === 'revoked' ? 'UNAUTHENTICATED' : 'SHUTTING_DOWN');
    };

    // Subscribe before reading the position, so a change committed in between is not missed.
    const subscription = s.push.subscribe(p.userId, p.credentialKey, 0, {
      changed(seq) {
        latest = Math.max(latest, seq);
        schedule();
      },
      close(reason) {
        if (!started) {
          refused = reason;
          return;
        }
        if (ended) return;
        if (reason === 'revoked' && !res.destroyed) res.write('event: revoked\ndata: {}\n\n');
        cleanup();
        res.end();
      },
    });
    if (!subscription || refused) return refuse(refused ?? 'shutdown');
    let position: number;
    let cursor: string;
    try {
      ({ cursor, position } = await s.changes.latest(p));
    } catch (err) {
      cleanup();
      throw err;
    }
    if (refused) return refuse(refused);
    if (res.destroyed) {
      cleanup();
      return reply;
    }

    reply.hijack();
    res.on('close', cleanup);
    res.writeHead(200, headers());
    started = true;
    sent = position;
    latest = Math.max(latest, position);
    write(`retry: 2000\nevent: ready\ndata: ${JSON.stringify({ cursor, position })}\n\n`);
    schedule(); // anything committed between subscribing and reading the position
    heartbeat = setInterval(() => write(': ping\n\n'), HEARTBEAT_MS);
    heartbeat.unref();
    return reply;
  });
};
