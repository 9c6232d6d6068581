/** The push channel's event-stream parser, fed in awkward pieces. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseSse } from './sse.ts';
import type { PushEvent } from './types.ts';

async function parse(pieces: string[]): Promise<PushEvent[]> {
  const out: PushEvent[] = [];
  for await (const e of parseSse((async function* () { yield* pieces; })())) out.push(e);
  return out;
}

describe('parseSse', () => {
  const stream = 'retry: 2000\nevent: ready\ndata: {"cursor":"c","position":3}\n\n: ping\n\nevent: changed\ndata: {"position":4}\n\nevent: revoked\ndata: {}\n\n';
  const expected = [
    { event: 'ready', data: '{"cursor":"c","position":3}' },
    { event: 'changed', data: '{"position":4}' },
    { event: 'revoked', data: '{}' },
  ];

  it('reads events, skipping comments and retry', async () => {
    assert.deepEqual(await parse([stream]), expected);
  });

  it('gives the same events however the text is split, with LF, CRLF or CR line ends', async () => {
    for (const eol of ['\n', '\r\n', '\r']) {
      const text = stream.replace(/\n/g, eol);
      for (let size = 1; size <= 7; size++) {
        const pieces: string[] = [];
        for (let i = 0; i < text.length; i += size) pieces.push(text.slice(i, i + size));
        assert.deepEqual(await parse(pieces), expected, `eol ${JSON.stringify(eol)}, pieces of ${size}`);
      }
    }
  });

  it('joins data lines, defaults the event name, keeps the id, and drops an unfinished event', async () => {
    assert.deepEqual(await parse(['id: 7\ndata: a\ndata\ndata:  b\n\n', 'event: x\n\n', 'data: cut off']), [
      { event: 'message', data: 'a\n\n b', id: '7' },
    ]);
  });
});
