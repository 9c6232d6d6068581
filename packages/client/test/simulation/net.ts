/**
 * The network between a simulated client and the real server: the real
 * `fetch`, wrapped so that while a sync is "armed" with a fault rate, a
 * seeded share of its requests fail the ways real connections fail:
 *
 * - before the server saw anything: the connection dropped (ECONNRESET),
 *   was refused (ECONNREFUSED: the client knows nothing was sent), timed
 *   out, or a proxy answered 503;
 * - after the server handled the request: the answer is lost (the real
 *   request runs, its response is thrown away, the client sees a dropped
 *   connection), or its body breaks off part-way;
 * - slow: a short real delay before the request goes out;
 * - the change feed answers 410 RESYNC_REQUIRED (the client was away
 *   longer than the server keeps its feed): the client lists everything.
 *
 * Every decision comes from the sync's own seeded stream, in the order the
 * client makes its requests (which is deterministic: the simulation runs
 * one thing at a time). Two kinds of requests are never faulted: token
 * renewal (a lost refresh answer ends the session for good — correct, but
 * a dead end for the simulation) and folder listings (listTree runs them
 * four at a time, so their order is not deterministic; the simulation's
 * clients list only when they first link, before any fault is armed).
 *
 * Commit answers that reach the client are reported: the server has then
 * acknowledged that content, and the simulation checks it is never lost.
 */
import type { FetchFn } from '../../src/remote/http.ts';
import type { Rng } from './rng.ts';

export type FaultKind = 'reset' | 'refused' | 'timeout' | 'unavailable' | 'lost-answer' | 'cut-body' | 'slow' | 'resync';

const KINDS: readonly (readonly [FaultKind, number])[] = [
  ['reset', 3], ['refused', 1], ['timeout', 1], ['unavailable', 2], ['lost-answer', 3], ['cut-body', 2], ['slow', 2], ['resync', 1],
];

export class FaultyNet {
  private readonly real: FetchFn;
  private readonly onAck: (contentHash: string) => void;
  private rate = 0;
  private rng: Rng | null = null;
  /** Faults injected since the last arm(), as "kind METHOD /path" (ids left out, so the log replays). */
  injected: string[] = [];
  /** Every fault ever injected, by kind. */
  readonly counts = new Map<FaultKind, number>();

  constructor(onAck: (contentHash: string) => void, real: FetchFn = (input, init) => fetch(input, init)) {
    this.onAck = onAck;
    this.real = real;
  }

  arm(rate: number, rng: Rng): void {
    this.rate = rate;
    this.rng = rng;
    this.injected = [];
  }

  disarm(): void {
    this.rate = 0;
    this.rng = null;
  }

  readonly fetch: FetchFn = async (input, init) => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    const method = init?.method ?? 'GET';
    const exempt = url.pathname.startsWith('/api/v1/auth/') || url.pathname.endsWith('/children');
    let fault = !exempt && this.rng && this.rate > 0 && this.rng.chance(this.rate) ? this.rng.weighted(KINDS) : null;
    if (fault === 'resync' && url.pathname !== '/api/v1/changes') fault = 'reset';
    if (fault) {
      this.injected.push(`${fault} ${method} ${url.pathname.replace(/\/[0-9a-f-]{36}(?=\/|$)/g, '/:id')}`);
      this.counts.set(fault, (this.counts.get(fault) ?? 0) + 1);
    }
    switch (fault) {
      case 'reset': throw dropped('ECONNRESET');
      case 'refused': throw dropped('ECONNREFUSED');
      case 'timeout': throw new DOMException('nothing moved for 60000 ms', 'TimeoutError');
      case 'unavailable':
        return new Response(JSON.stringify({ error: { code: 'UNAVAILABLE', message: 'simulated: the server is busy' } }), { status: 503, headers: { 'content-type': 'application/json' } });
      case 'resync':
        return new Response(JSON.stringify({ error: { code: 'RESYNC_REQUIRED', message: 'simulated: the feed no longer reaches back to this cursor', details: { reason: 'history-expired' } } }), { status: 410, headers: { 'content-type': 'application/json' } });
      case 'slow':
        await new Promise((r) => setTimeout(r, this.rng!.between(1, 12)));
        break;
      case 'lost-answer': {
        const res = await this.real(input, init);
        await res.arrayBuffer().catch(() => {});
        throw dropped('ECONNRESET');
      }
      case 'cut-body': {
        const res = await this.real(input, init);
        const bytes = new Uint8Array(await res.arrayBuffer());
        if (res.status === 204 || res.status === 304 || bytes.length < 2) throw dropped('ECONNRESET');
        const cut = 1 + this.rng!.int(bytes.length - 1);
        return new Response(new ReadableStream<Uint8Array>({
          start(c) {
            c.enqueue(bytes.slice(0, cut));
            c.error(dropped('ECONNRESET'));
          },
        }), { status: res.status, statusText: res.statusText, headers: res.headers });
      }
    }
    const res = await this.real(input, init);
    if (res.ok && method === 'POST' && /^\/api\/v1\/uploads\/[^/]+\/commit$/.test(url.pathname)) {
      const item = await res.clone().json() as { contentHash?: string | null };
      if (item.contentHash) this.onAck(item.contentHash);
    }
    return res;
  };
}

/** What undici throws when a connection fails. */
function dropped(code: string): TypeError {
  return new TypeError('fetch failed', { cause: Object.assign(new Error(`simulated ${code}`), { code }) });
}
