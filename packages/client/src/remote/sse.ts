/**
 * A Server-Sent Events parser (the WHATWG event-stream format) over text
 * pieces as they arrive: lines end in CRLF, LF or CR; a blank line ends an
 * event; `data` lines join with "\n"; comments (`: ping`) and `retry` are
 * read and dropped. Pieces may split anywhere, even between CR and LF.
 */
import type { PushEvent } from './types.ts';

export async function* parseSse(pieces: AsyncIterable<string>): AsyncGenerator<PushEvent> {
  let buf = '';
  let event = '';
  let data: string[] = [];
  let id: string | undefined;
  let skipLf = false;
  for await (const piece of pieces) {
    buf += piece;
    let start = 0;
    for (let i = 0; i < buf.length; i++) {
      const ch = buf.charCodeAt(i);
      if (ch !== 10 && ch !== 13) continue;
      if (ch === 10 && skipLf && i === start) { // the LF of a CRLF split across lines
        skipLf = false;
        start = i + 1;
        continue;
      }
      const line = buf.slice(start, i);
      skipLf = ch === 13;
      start = i + 1;
      if (line === '') {
        if (data.length > 0) yield { event: event || 'message', data: data.join('\n'), ...(id !== undefined ? { id } : {}) };
        event = '';
        data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id' && !value.includes('\0')) id = value;
    }
    buf = buf.slice(start);
    if (skipLf && buf.length > 0) {
      if (buf.charCodeAt(0) === 10) buf = buf.slice(1);
      skipLf = false;
    }
  }
}
