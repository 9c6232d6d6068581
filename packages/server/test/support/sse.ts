/**
 * A minimal Server-Sent Events client for tests: node:http on a connection
 * of its own, events parsed as they arrive and stamped with their arrival
 * time. Every wait is bounded.
 */
import { request, type IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';

export interface SseEvent { event: string; data: string; at: number }

export interface SseStream {
  status: number;
  headers: IncomingMessage['headers'];
  /** Every event so far (comments are not events). */
  events: SseEvent[];
  /** Comments (`: ping`) so far. */
  comments: number;
  /** performance.now() when the server ended the stream, or null while open. */
  endedAt: number | null;
  /** The next event (after the `from`-th) that matches; throws after timeoutMs. */
  waitFor(match: (e: SseEvent) => boolean, timeoutMs?: number, from?: number): Promise<SseEvent>;
  /** Resolves with the time the stream ended; throws after timeoutMs. */
  waitEnd(timeoutMs?: number): Promise<number>;
  /** Client-side disconnect. */
  close(): void;
}

export function openStream(url: string, token: string | null, path = '/api/v1/changes/stream', timeoutMs = 10_000): Promise<SseStream> {
  return new Promise((resolve, reject) => {
    const req = request(url + path, { agent: false, headers: { accept: 'text/event-stream', ...(token ? { authorization: `Bearer ${token}` } : {}) } });
    const timer = setTimeout(() => { req.destroy(); reject(new Error(`no answer from ${path} within ${timeoutMs} ms`)); }, timeoutMs);
    req.on('error', (e) => { clearTimeout(timer); reject(e); });
    req.on('response', (res) => {
      clearTimeout(timer);
      const waiters = new Set<() => void>();
      const wake = () => { for (const w of [...waiters]) w(); };
      let buf = '';
      const s: SseStream = {
        status: res.statusCode ?? 0, headers: res.headers, events: [], comments: 0, endedAt: null,
        waitFor(match, ms = 5_000, from = 0) {
          return new Promise((res2, rej) => {
            const check = () => {
              const e = s.events.slice(from).find(match);
              if (e) { done(); res2(e); return; }
              if (s.endedAt !== null) { done(); rej(new Error(`stream ended before the event; got ${JSON.stringify(s.events)}`)); }
            };
            const t = setTimeout(() => { done(); rej(new Error(`no matching event within ${ms} ms; got ${JSON.stringify(s.events)}`)); }, ms);
            const done = () => { clearTimeout(t); waiters.delete(check); };
            waiters.add(check);
            check();
          });
        },
        waitEnd(ms = 5_000) {
          return new Promise((res2, rej) => {
            const check = () => { if (s.endedAt !== null) { done(); res2(s.endedAt); } };
            const t = setTimeout(() => { done(); rej(new Error(`stream still open after ${ms} ms`)); }, ms);
            const done = () => { clearTimeout(t); waiters.delete(check); };
            waiters.add(check);
            check();
          });
        },
        close() { req.destroy(); },
      };
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let sep: number;
        while ((sep = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, sep);
          buf = buf.slice(sep + 2);
          let event = 'message';
          const data: string[] = [];
          let isEvent = false;
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) { s.comments++; continue; }
            const i = line.indexOf(':');
            const field = i < 0 ? line : line.slice(0, i);
            const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
            if (field === 'event') { event = value; isEvent = true; } else if (field === 'data') { data.push(value); isEvent = true; }
          }
          if (isEvent) s.events.push({ event, data: data.join('\n'), at: performance.now() });
        }
        wake();
      });
      const ended = () => { if (s.endedAt === null) { s.endedAt = performance.now(); wake(); } };
      res.on('end', ended);
      res.on('close', ended);
      res.on('error', ended);
      resolve(s);
    });
    req.end();
  });
}

/** The p-th percentile (0..100) of a list of numbers, nearest rank. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
