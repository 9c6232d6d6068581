/**
 * Push over Server-Sent Events (GET /api/v1/changes/stream), one process on
 * SQLite: a connected client is told within one second that its drive
 * changed, never about another drive, and its stream ends at once when the
 * token behind it is revoked.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { startTestServer, TEST_PASSWORD, clientFor, type TestServer, type TestUser } from '../support/test-server.ts';
import { openStream, percentile, type SseStream } from '../support/sse.ts';

const PUSH_DEADLINE_MS = 1_000;

describe('push: change notifications over SSE', () => {
  let s: TestServer;
  let alice: TestUser;
  /** A second client of alice's drive (its own token): the one making changes. */
  let aliceWriter: TestUser;
  let bob: TestUser;
  const streams: SseStream[] = [];

  async function stream(token: string | null): Promise<SseStream> {
    const st = await openStream(s.url, token);
    streams.push(st);
    return st;
  }

  /** Runs a change and returns how long after the request started the listener heard of it. */
  async function timed(listener: SseStream, change: () => Promise<{ status: number }>, expectStatus: number[]): Promise<number> {
    const from = listener.events.length;
    const t0 = performance.now();
    const r = await change();
    assert.ok(expectStatus.includes(r.status), `the change answered ${r.status}`);
    const e = await listener.waitFor((ev) => ev.event === 'changed', 2_000, from);
    return e.at - t0;
  }

  before(async () => {
    s = await startTestServer();
    alice = await s.user('alice');
    bob = await s.user('bob');
    aliceWriter = await s.signIn('alice');
  });
  after(async () => {
    for (const st of streams) st.close();
    await s?.close();
  });

  it('needs a valid token', async () => {
    for (const token of [null, 'cft_not-a-real-token']) {
      const st = await stream(token);
      assert.equal(st.status, 401);
      await st.waitEnd(2_000);
    }
  });

  it('starts with `ready`: the current cursor and position, as text/event-stream', async () => {
    const st = await stream(alice.token);
    assert.equal(st.status, 200);
    assert.match(String(st.headers['content-type']), /^text\/event-stream/);
    assert.equal(st.headers['cache-control'], 'no-cache, no-transform');
    const ready = await st.waitFor((e) => e.event === 'ready', 2_000);
    const body = JSON.parse(ready.data) as { cursor: string; position: number };
    const drive = await alice.json('/api/v1/drive');
    assert.equal(body.cursor, drive.body.cursor);
    assert.equal(typeof body.position, 'number');
    st.close();
  });

  it('tells a listener of every upload, rename and delete by another client within a second; other drives hear nothing', async () => {
    const listener = await stream(alice.token);
    const bobListener = await stream(bob.token);
    const ready = JSON.parse((await listener.waitFor((e) => e.event === 'ready')).data) as { cursor: string; position: number };
    await bobListener.waitFor((e) => e.event === 'ready');

    const up = await timed(listener, () => aliceWriter.json('/api/v1/content/pushed.txt', { method: 'PUT', body: 'hello push' }), [201]);
    const id = (await aliceWriter.json('/api/v1/items/by-path?path=pushed.txt')).body.id as string;
    const rename = await timed(listener, () => aliceWriter.json(`/api/v1/items/${id}`, { method: 'PATCH', body: { name: 'renamed.txt' } }), [200]);
    const del = await timed(listener, () => aliceWriter.json(`/api/v1/items/${id}`, { method: 'DELETE' }), [200]);
    for (const [what, ms] of [['upload', up], ['rename', rename], ['delete', del]] as const) {
      assert.ok(ms < PUSH_DEADLINE_MS, `${what}: told after ${ms.toFixed(0)} ms`);
    }

    // The positions told are the feed's: the listener reads exactly these changes from its cursor.
    const last = JSON.parse(listener.events.filter((e) => e.event === 'changed').at(-1)!.data) as { position: number };
    const page = await alice.json(`/api/v1/changes?cursor=${ready.cursor}`);
    assert.equal(page.status, 200);
    assert.deepEqual(page.body.changes.map((c: { op: string }) => c.op), ['create', 'move', 'delete']);
    assert.equal(page.body.changes.at(-1).position, last.position);

    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(bobListener.events.map((e) => e.event), ['ready'], "bob's stream hears nothing of alice's drive");
    assert.equal(bobListener.endedAt, null);
    listener.close();
    bobListener.close();
  });

  it('coalesces a burst into few events that end at the last position', async () => {
    const listener = await stream(alice.token);
    await listener.waitFor((e) => e.event === 'ready');
    const from = listener.events.length;
    await Promise.all(Array.from({ length: 20 }, (_, i) => aliceWriter.json(`/api/v1/content/burst-${i}.txt`, { method: 'PUT', body: `b${i}` })));
    const position = (await alice.json('/api/v1/drive')).body.cursor;
    const target = JSON.parse(Buffer.from(position, 'base64url').toString().split('|')[3]) as number;
    await listener.waitFor((e) => e.event === 'changed' && (JSON.parse(e.data) as { position: number }).position === target, 2_000, from);
    const told = listener.events.slice(from).filter((e) => e.event === 'changed');
    assert.ok(told.length < 20, `${told.length} events for 20 changes`);
    const positions = told.map((e) => (JSON.parse(e.data) as { position: number }).position);
    assert.deepEqual(positions, [...positions].sort((a, b) => a - b), 'positions only grow');
    listener.close();
  });

  it('latency over 30 changes (p50/p95 printed), every one under a second', async () => {
    const listener = await stream(alice.token);
    await listener.waitFor((e) => e.event === 'ready');
    const times: number[] = [];
    for (let i = 0; i < 30; i++) {
      times.push(await timed(listener, () => aliceWriter.json(`/api/v1/content/latency-${i}.txt`, { method: 'PUT', body: `n${i}` }), [201]));
      await new Promise((r) => setTimeout(r, 120)); // past the coalescing window: one event per change
    }
    const p50 = percentile(times, 50);
    const p95 = percentile(times, 95);
    console.log(`push latency (single process, SQLite), request start → event, n=${times.length}: p50 ${p50.toFixed(1)} ms, p95 ${p95.toFixed(1)} ms, max ${Math.max(...times).toFixed(1)} ms`);
    assert.ok(Math.max(...times) < PUSH_DEADLINE_MS);
    listener.close();
  });

  it("revoking the listener's token ends its stream within a second; other streams stay open", async () => {
    const token = (await s.signIn('alice')).token;
    const doomed = await stream(token);
    const other = await stream(alice.token);
    await doomed.waitFor((e) => e.event === 'ready');
    await other.waitFor((e) => e.event === 'ready');
    const t0 = performance.now();
    const revoke = await fetch(`${s.url}/api/v1/auth/logout`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    assert.equal(revoke.status, 204);
    const endedAt = await doomed.waitEnd(PUSH_DEADLINE_MS);
    console.log(`stream closed ${(endedAt - t0).toFixed(1)} ms after the revoke request started`);
    assert.ok(endedAt - t0 < PUSH_DEADLINE_MS);
    assert.equal(doomed.events.at(-1)?.event, 'revoked');
    // The revoked token opens no new stream; the other stream still works.
    const again = await stream(token);
    assert.equal(again.status, 401);
    assert.equal(other.endedAt, null);
    const from = other.events.length;
    await aliceWriter.json('/api/v1/content/after-revoke.txt', { method: 'PUT', body: 'still here' });
    await other.waitFor((e) => e.event === 'changed', PUSH_DEADLINE_MS, from);
    other.close();
  });

  it('a client that disconnects is forgotten', async () => {
    const hub = s.server.coffer.services.push;
    for (const st of streams) st.close();
    const base = await waitSize(hub, (n) => n === 0);
    assert.equal(base, 0);
    const st = await stream(alice.token);
    await st.waitFor((e) => e.event === 'ready');
    assert.equal(hub.size, 1);
    st.close();
    assert.equal(await waitSize(hub, (n) => n === 0), 0);
  });
});

describe('push: shutdown', () => {
  it('the server closes promptly with streams open, ending them', async () => {
    const s = await startTestServer();
    const u = await s.user('carol');
    const st = await openStream(s.url, u.token);
    await st.waitFor((e) => e.event === 'ready');
    const t0 = performance.now();
    await s.close();
    assert.ok(performance.now() - t0 < 5_000, 'close did not wait for the open stream');
    await st.waitEnd(2_000);
  });
});

async function waitSize(hub: { size: number }, ok: (n: number) => boolean, ms = 2_000): Promise<number> {
  const deadline = Date.now() + ms;
  while (!ok(hub.size)) {
    if (Date.now() > deadline) throw new Error(`hub still has ${hub.size} channels`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return hub.size;
}
