/**
 * Names over HTTP: stored in NFC (so a Mac's NFD and everybody else's NFC
 * are one file), refused with INVALID_NAME and a reason when some OS could
 * not hold them, paths limited to 4096 bytes, and no spelling of ".." or an
 * encoded separator ever reaches outside the caller's drive.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startTestServer, type TestServer, type TestUser } from '../support/test-server.ts';

const NFD = 'Cafe\u0301.txt';
const NFC = 'Caf\u00e9.txt';

/** Encodes each segment of a path for a URL, keeping the '/' separators. */
const urlPath = (path: string) => path.split('/').map(encodeURIComponent).join('/');

async function expectError(res: Response | Promise<Response>, status: number, code: string, label: string): Promise<Record<string, any>> {
  const r = await res;
  const text = await r.text();
  assert.equal(r.status, status, `${label}: expected ${status} ${code}, got ${r.status} ${text.slice(0, 300)}`);
  const body = JSON.parse(text);
  assert.deepEqual(Object.keys(body), ['error'], label);
  assert.equal(body.error.code, code, label);
  assert.equal(typeof body.error.requestId, 'string', label);
  assert.doesNotMatch(text, /\n\s*at |node:internal|\/work\//, `${label}: leaks internals`);
  return body.error;
}

/**
 * Sends a request with the path exactly as given: fetch() and URL would
 * resolve "..", "%2e%2e" and friends on the client before the server saw them.
 */
function rawGet(base: string, path: string, token: string, method = 'GET', body?: string): Promise<{ status: number; text: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, method, headers: { authorization: `Bearer ${token}` } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('names', () => {
  let s: TestServer;
  let alice: TestUser;

  before(async () => {
    s = await startTestServer();
    alice = await s.user('alice');
  });
  after(() => s?.close());

  describe('NFC normalization', () => {
    let id: string;

    it('an NFD name uploaded by path is stored as NFC', async () => {
      assert.notEqual(NFD, NFC);
      assert.equal(NFD.normalize('NFC'), NFC);
      const r = await alice.json(`/api/v1/content/${urlPath(NFD)}`, { method: 'PUT', body: 'first' });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal(r.body.name, NFC);
      id = r.body.id;
    });

    it('the NFC path and the NFD path find the same item', async () => {
      for (const p of [NFC, NFD]) {
        const stat = await alice.json(`/api/v1/items/by-path?path=${encodeURIComponent(p)}`);
        assert.equal(stat.status, 200);
        assert.equal(stat.body.id, id);
        assert.equal(stat.body.name, NFC);
        const content = await alice.fetch(`/api/v1/content/${urlPath(p)}`);
        assert.equal(content.status, 200);
        assert.equal(await content.text(), 'first');
        assert.match(content.headers.get('content-disposition') ?? '', new RegExp(encodeURIComponent(NFC)));
      }
    });

    it('the listing shows one item, with the NFC name', async () => {
      const list = await alice.json(`/api/v1/items/${alice.rootId}/children`);
      assert.equal(list.body.total, 1);
      assert.deepEqual(list.body.items.map((i: { id: string; name: string }) => [i.id, i.name]), [[id, NFC]]);
      assert.equal(list.body.items[0].name.normalize('NFC'), list.body.items[0].name);
    });

    it('uploading the NFC name adds a version to the same item, not a second file', async () => {
      const r = await alice.json(`/api/v1/content/${urlPath(NFC)}`, { method: 'PUT', body: 'second' });
      assert.equal(r.status, 200);
      assert.equal(r.body.id, id);
      assert.equal(r.body.rev, 2);
      const versions = await alice.json(`/api/v1/items/${id}/versions`);
      assert.equal(versions.body.versions.length, 2);
      const list = await alice.json(`/api/v1/items/${alice.rootId}/children`);
      assert.equal(list.body.total, 1);
      // …and the NFD spelling again, by folder id and name: still the same item.
      const again = await alice.json(`/api/v1/items/${alice.rootId}/children/${encodeURIComponent(NFD)}/content`, { method: 'PUT', body: 'third' });
      assert.equal(again.status, 200);
      assert.equal(again.body.id, id);
      assert.equal((await alice.json(`/api/v1/items/${alice.rootId}/children`)).body.total, 1);
      assert.equal(await (await alice.fetch(`/api/v1/content/${urlPath(NFD)}`)).text(), 'third');
    });

    it('folders: NFD and NFC are one name (NAME_CONFLICT), and renames are normalized too', async () => {
      const f = await alice.json('/api/v1/folders', { method: 'POST', body: { parentId: alice.rootId, name: 'Re\u0301sume\u0301s' } });
      assert.equal(f.status, 201);
      assert.equal(f.body.name, 'R\u00e9sum\u00e9s');
      await expectError(alice.fetch('/api/v1/folders', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ parentId: alice.rootId, name: 'R\u00e9sum\u00e9s' }) }),
        409, 'NAME_CONFLICT', 'NFC after NFD');
      const byPath = await alice.json('/api/v1/folders', { method: 'POST', body: { path: 'Re\u0301sume\u0301s/A\u030a' } });
      assert.equal(byPath.status, 201);
      assert.equal(byPath.body.name, '\u00c5');
      const renamed = await alice.json(`/api/v1/items/${byPath.body.id}`, { method: 'PATCH', body: { name: 'n\u0303' } });
      assert.equal(renamed.status, 200);
      assert.equal(renamed.body.name, '\u00f1');
      const found = await alice.json(`/api/v1/items/by-path?path=${encodeURIComponent('R\u00e9sum\u00e9s/\u00f1')}`);
      assert.equal(found.body.id, byPath.body.id);
    });
  });

  describe('refused names → 400 INVALID_NAME with details.reason', () => {
    const refused: [string, string, string][] = [
      ['..', '..', 'dot'],
      ['.', '.', 'dot'],
      ['a slash', 'a/b', 'forbidden-character'],
      ['a backslash', 'a\\b', 'forbidden-character'],
      ['NUL', 'a\u0000b', 'forbidden-character'],
      ['a control character', 'a\u0001b', 'forbidden-character'],
      ['a newline', 'line\nbreak', 'forbidden-character'],
      ['DEL', 'a\u007f', 'forbidden-character'],
      ...[':', '*', '?', '"', '<', '>', '|'].map((c): [string, string, string] => [`"${c}"`, `a${c}b`, 'forbidden-character']),
      ['a trailing dot', 'name.', 'trailing-dot-or-space'],
      ['a trailing space', 'name ', 'trailing-dot-or-space'],
      ...['CON', 'PRN', 'AUX', 'NUL', 'COM1', 'LPT1', 'con', 'Com1'].flatMap((n): [string, string, string][] => [
        [n, n, 'windows-reserved'],
        [`${n}.txt`, `${n}.txt`, 'windows-reserved'],
      ]),
      ['a 256-byte name of two-byte characters', '\u00e9'.repeat(128), 'too-long'],
      ['a 256-byte name of four-byte characters', '\u{1F4C1}'.repeat(64), 'too-long'],
      ['a 256-byte name of three-byte characters plus one', `${'\u20ac'.repeat(85)}x`, 'too-long'],
      ['an empty name', '', 'empty'],
    ];

    for (const [label, name, reason] of refused) {
      it(`${label}: creating a folder, renaming, copying and uploading by folder id`, async () => {
        const create = await expectError(alice.fetch('/api/v1/folders', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ parentId: alice.rootId, name }) }),
          400, 'INVALID_NAME', `create ${label}`);
        assert.equal(create.details?.reason, reason, `create ${label}`);
        assert.ok(create.message.length > 0);

        const target = await alice.json('/api/v1/folders', { method: 'POST', body: { path: `target-${reason}` } });
        const targetId = target.status === 201 ? target.body.id : (await alice.json(`/api/v1/items/by-path?path=target-${reason}`)).body.id;
        const rename = await expectError(alice.fetch(`/api/v1/items/${targetId}`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name }) }),
          400, 'INVALID_NAME', `rename ${label}`);
        assert.equal(rename.details?.reason, reason);
        const copy = await expectError(alice.fetch(`/api/v1/items/${targetId}/copy`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ parentId: alice.rootId, name }) }),
          400, 'INVALID_NAME', `copy ${label}`);
        assert.equal(copy.details?.reason, reason);

        if (name !== '') {
          // encodeURIComponent turns '/' into %2F: the router decodes it into the name, which is refused, not split.
          // (rawGet: fetch would resolve a "." or ".." segment before sending.)
          const upload = await rawGet(s.url, `/api/v1/items/${alice.rootId}/children/${encodeURIComponent(name)}/content`, alice.token, 'PUT', 'x');
          assert.equal(upload.status, 400, `upload ${label}: ${upload.text}`);
          assert.equal(JSON.parse(upload.text).error.code, 'INVALID_NAME');
          assert.equal(JSON.parse(upload.text).error.details?.reason, reason);
        }
      });
    }

    it('the same names in the last segment of an upload path', async () => {
      for (const [label, name, reason] of refused) {
        if (name === '' || name.includes('/')) continue; // a separator there just makes a different path
        const r = await rawGet(s.url, `/api/v1/content/docs/${encodeURIComponent(name)}`, alice.token, 'PUT', 'x');
        assert.equal(r.status, 400, `${label}: ${r.text}`);
        const err = JSON.parse(r.text).error;
        assert.equal(err.code, 'INVALID_NAME', label);
        assert.equal(err.details?.reason, reason, label);
      }
    });

    it('a name that is not well-formed Unicode', async () => {
      const err = await expectError(alice.fetch('/api/v1/folders', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"parentId":"' + alice.rootId + '","name":"a\\ud800b"}' }),
        400, 'INVALID_NAME', 'lone surrogate');
      assert.equal(err.details?.reason, 'malformed-unicode');
    });

    it('the longest legal names are accepted: 255 bytes of multi-byte characters', async () => {
      for (const name of ['\u20ac'.repeat(85), `${'\u00e9'.repeat(127)}x`, 'a'.repeat(255)]) {
        assert.equal(Buffer.byteLength(name), 255);
        const r = await alice.json('/api/v1/folders', { method: 'POST', body: { parentId: alice.rootId, name } });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        assert.equal(r.body.name, name);
      }
    });

    it('names that merely look reserved are accepted', async () => {
      for (const name of ['CONSOLE', 'COM10', 'LPT', 'xNUL', 'aux-files', '.hidden', '..dots', 'a.b.c', ' leading']) {
        const r = await alice.json('/api/v1/folders', { method: 'POST', body: { parentId: alice.rootId, name } });
        assert.equal(r.status, 201, `${name}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.name, name);
      }
    });

    it('nothing with a refused name was created', async () => {
      const all: string[] = [];
      let cursor: string | null = null;
      do {
        const page: { body: { items: { name: string }[]; nextCursor: string | null } } = await alice.json(`/api/v1/items/${alice.rootId}/children?limit=1000${cursor ? `&cursor=${cursor}` : ''}`);
        all.push(...page.body.items.map((i) => i.name));
        cursor = page.body.nextCursor;
      } while (cursor);
      for (const [, name] of refused) assert.ok(!all.includes(name), `${JSON.stringify(name)} exists`);
      assert.ok(!all.includes('x'));
    });
  });

  describe('path length → 400 PATH_TOO_LONG', () => {
    // Two-byte characters: the path is under 4096 characters but over 4096 bytes.
    const segment = '\u00e9'.repeat(100); // 200 bytes
    const longMultibyte = Array(21).fill(segment).join('/'); // 21 × 200 + 20 = 4220 bytes, 2120 characters
    const longAscii = Array(17).fill('a'.repeat(250)).join('/'); // 4266 bytes

    it('the long paths are what they claim', () => {
      assert.ok(longMultibyte.length < 4096 && Buffer.byteLength(longMultibyte) > 4096);
      assert.ok(Buffer.byteLength(longAscii) > 4096);
    });

    for (const [label, path] of [['multi-byte', longMultibyte], ['ASCII', longAscii]] as const) {
      it(`${label}: lookup, download, upload and folder creation by path`, async () => {
        await expectError(alice.fetch(`/api/v1/items/by-path?path=${encodeURIComponent(path)}`), 400, 'PATH_TOO_LONG', 'by-path');
        await expectError(alice.fetch(`/api/v1/content/${urlPath(path)}`), 400, 'PATH_TOO_LONG', 'download');
        await expectError(alice.fetch(`/api/v1/content/${urlPath(path)}`, { method: 'PUT', body: 'x' }), 400, 'PATH_TOO_LONG', 'upload');
        await expectError(alice.fetch('/api/v1/folders', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ path }) }),
          400, 'PATH_TOO_LONG', 'mkdir');
      });
    }

    it('a path of exactly 4096 bytes is looked up normally (404, not refused)', async () => {
      const exact = `/${Array(16).fill('a'.repeat(255)).join('/')}`;
      assert.equal(Buffer.byteLength(exact), 4096);
      await expectError(alice.fetch(`/api/v1/items/by-path?path=${encodeURIComponent(exact)}`), 404, 'NOT_FOUND', 'exact');
      await expectError(alice.fetch(`/api/v1/items/by-path?path=${encodeURIComponent(`${exact}/`)}`), 400, 'PATH_TOO_LONG', 'exact + 1');
    });

    it('a path deeper than 256 levels', async () => {
      await expectError(alice.fetch(`/api/v1/items/by-path?path=${'a/'.repeat(257)}`), 400, 'PATH_TOO_LONG', 'deep');
    });
  });

  describe('path traversal never leaves the drive', () => {
    let secretId: string;

    before(async () => {
      // Something a traversal might hope to reach: another user's file.
      const bob = await s.user('bob');
      const r = await bob.json('/api/v1/content/passwd', { method: 'PUT', body: 'BOB-PASSWD-CONTENT' });
      assert.equal(r.status, 201);
      secretId = r.body.id;
      const inner = await alice.json('/api/v1/folders', { method: 'POST', body: { path: 'inner' } });
      assert.equal(inner.status, 201);
    });

    const attempts = [
      '/api/v1/content/../../etc/passwd',
      '/api/v1/content/../../../../../../../../etc/passwd',
      '/api/v1/content/inner/../../../etc/passwd',
      '/api/v1/content/%2e%2e/%2e%2e/etc/passwd',
      '/api/v1/content/%2E%2E/%2E%2E/etc/passwd',
      '/api/v1/content/.%2e/.%2e/etc/passwd',
      '/api/v1/content/..%2f..%2f..%2fetc%2fpasswd',
      '/api/v1/content/..%2F..%2Fetc%2Fpasswd',
      '/api/v1/content/%2e%2e%2f%2e%2e%2fetc%2fpasswd',
      '/api/v1/content/..%5c..%5cetc%5cpasswd',
      '/api/v1/content/..\\..\\etc\\passwd',
      '/api/v1/content/%252e%252e%252fetc%252fpasswd',
      '/api/v1/content/%c0%ae%c0%ae/etc/passwd',
      '/api/v1/content/..%00/etc/passwd',
      '/api/v1/content//etc/passwd',
      '/api/v1/content/./etc/passwd',
      '/api/v1/content/inner/%2e/../passwd',
      '/api/v1/content/%2fetc%2fpasswd',
      '/api/v1/content/C:%5cWindows%5cwin.ini',
      '/api/v1/items/by-path?path=../../etc/passwd',
      '/api/v1/items/by-path?path=%2e%2e%2f%2e%2e%2fetc%2fpasswd',
      '/api/v1/items/by-path?path=..%5c..%5cetc%5cpasswd',
      '/api/v1/items/by-path?path=/etc/passwd',
      '/api/v1/items/..%2f..%2fetc%2fpasswd/content',
      '/api/v1/items/%2e%2e/content',
      '/api/v1/items/ROOT/children/..%2f..%2fetc%2fpasswd/content',
      '/api/v1/content/../../bob/passwd',
      '/api/v1/content/..%2fbob%2fpasswd',
    ];

    for (const attempt of attempts) {
      it(`GET ${attempt}`, async () => {
        const r = await rawGet(s.url, attempt.replace('ROOT', alice.rootId), alice.token);
        assert.ok([400, 404].includes(r.status), `${attempt}: ${r.status} ${r.text.slice(0, 200)}`);
        const body = JSON.parse(r.text);
        assert.deepEqual(Object.keys(body), ['error']);
        assert.ok(['INVALID_NAME', 'NOT_FOUND', 'ROUTE_NOT_FOUND', 'BAD_REQUEST', 'VALIDATION_FAILED', 'PATH_TOO_LONG'].includes(body.error.code), `${attempt}: ${body.error.code}`);
        assert.doesNotMatch(r.text, /root:|BOB-PASSWD-CONTENT|\[fonts\]|\/bin\/(ba)?sh/);
        assert.ok(!r.text.includes(secretId));
      });
    }

    it('"." and ".." segments are refused, not resolved', async () => {
      for (const p of ['/api/v1/content/inner/../passwd', '/api/v1/content/inner/./x', '/api/v1/content/%2e%2e']) {
        const r = await rawGet(s.url, p, alice.token);
        assert.equal(r.status, 400, p);
        assert.equal(JSON.parse(r.text).error.code, 'INVALID_NAME');
        assert.equal(JSON.parse(r.text).error.details.reason, 'dot');
      }
    });

    it('uploads with traversal paths are refused and write nothing anywhere', async () => {
      const before = (await alice.json('/api/v1/me')).body.usedBytes;
      for (const p of ['/api/v1/content/../../evil.txt', '/api/v1/content/..%2f..%2fevil.txt', '/api/v1/content/%2e%2e/evil.txt',
        '/api/v1/content/inner/..%5c..%5cevil.txt', `/api/v1/items/${alice.rootId}/children/..%2fevil.txt/content`,
        `/api/v1/items/${alice.rootId}/children/%2e%2e/content`]) {
        const r = await rawGet(s.url, p, alice.token, 'PUT', 'EVIL');
        assert.ok([400, 404].includes(r.status), `${p}: ${r.status} ${r.text}`);
      }
      assert.equal((await alice.json('/api/v1/me')).body.usedBytes, before);
      for (const dir of [s.dataDir, join(s.dataDir, '..'), join(s.dataDir, 'blobs'), join(s.dataDir, 'blobs', '..', '..')]) {
        assert.ok(!existsSync(join(dir, 'evil.txt')), `evil.txt in ${dir}`);
      }
      const list = await alice.json(`/api/v1/items/${alice.rootId}/children?limit=1000`);
      assert.ok(!list.body.items.some((i: { name: string }) => i.name.includes('evil')));
    });
  });
});
