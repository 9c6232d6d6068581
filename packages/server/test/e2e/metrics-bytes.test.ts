/**
 * /metrics counts the bytes a connection really carried: a streamed upload
 * without Content-Length (chunked transfer encoding, as the sync client's
 * chunk uploads are sent) and a download each move the counters by about
 * their body size (within one socket read), where Content-Length alone saw 0.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startTestServer, type TestServer, type TestUser } from '../support/test-server.ts';

async function counters(url: string): Promise<{ received: number; sent: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const read = (name: string) => Number(new RegExp(`^${name} ([\\d.e+]+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { received: read('coffer_http_received_bytes_total'), sent: read('coffer_http_sent_bytes_total') };
}

describe('/metrics byte counters', () => {
  let s: TestServer;
  let alice: TestUser;
  before(async () => {
    s = await startTestServer();
    alice = await s.user('alice');
  });
  after(async () => { await s?.close(); });

  it('count a chunked upload with no Content-Length, and the download of it', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 7);
    const before = await counters(s.url);
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        for (let at = 0; at < data.length; at += 256 * 1024) c.enqueue(data.subarray(at, at + 256 * 1024));
        c.close();
      },
    });
    const up = await alice.fetch('/api/v1/content/streamed.bin', { method: 'PUT', body, duplex: 'half' } as RequestInit);
    assert.equal(up.status, 201, await up.text());
    const mid = await counters(s.url);
    const received = mid.received - before.received;
    // The body's start may come in the socket read that brought the headers (at most 64 KiB).
    assert.ok(received >= data.length - 64 * 1024 && received < data.length + 64 * 1024, `received grew by ${received} for ${data.length} body bytes`);

    const down = await alice.fetch('/api/v1/content/streamed.bin');
    assert.equal(Buffer.from(await down.arrayBuffer()).length, data.length);
    const end = await counters(s.url);
    const sent = end.sent - mid.sent;
    assert.ok(sent >= data.length && sent < data.length + 64 * 1024, `sent grew by ${sent} for ${data.length} body bytes`);
  });
});
