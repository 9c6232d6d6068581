/**
 * writeFileRanges over real files and a real HTTP connection, in both of its
 * read modes (blocking reads from the page cache, and the thread pool): many
 * small files and ranges inside them arrive in order and byte-exact, a file
 * shorter than recorded or missing fails the response instead of sending
 * wrong bytes, and no file stays open afterwards.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileRanges, type FileRange } from './file-sender.ts';

let dir: string;
const files: { path: string; data: Buffer }[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'coffer-sender-'));
  // Sizes around the 1 MiB buffer: many files share one buffer, one file spans several.
  const sizes = [1, 4096, 131_072, 300_001, 1_048_576, 1_048_577, 2_500_000, ...Array.from({ length: 40 }, (_, i) => 20_000 + i * 7919)];
  for (const [i, size] of sizes.entries()) {
    const path = join(dir, `f${i}`);
    const data = randomBytes(size);
    await writeFile(path, data);
    files.push({ path, data });
  }
});
after(async () => { await rm(dir, { recursive: true, force: true }); });

async function serve(ranges: FileRange[], blocking: boolean): Promise<{ status: number; body: Buffer; failed: boolean }> {
  let failed = false;
  const server: Server = createServer((req, res) => {
    res.writeHead(200);
    writeFileRanges(res, ranges, { blocking }).then(() => res.end(), () => { failed = true; res.destroy(); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    // A failed send destroys the connection: before the headers went out, fetch itself fails.
    const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`).catch(() => null);
    const body = Buffer.from(res ? await res.arrayBuffer().catch(() => new ArrayBuffer(0)) : new ArrayBuffer(0));
    return { status: res?.status ?? 0, body, failed };
  } finally {
    await new Promise((r) => server.close(r));
  }
}

async function openFds(): Promise<number> {
  return (await readdir('/proc/self/fd')).length;
}

for (const blocking of [true, false]) {
  describe(`writeFileRanges, ${blocking ? 'blocking reads from the page cache' : 'reads through the thread pool'}`, () => {
    it('sends whole files and ranges inside them, in order and byte-exact, and closes every file', async () => {
      const fdsBefore = await openFds();
      const ranges: FileRange[] = [];
      const expected: Buffer[] = [];
      for (const [i, f] of files.entries()) {
        const start = i % 3 === 0 ? 0 : Math.floor(f.data.length / 3);
        const end = i % 5 === 0 ? f.data.length - 1 : Math.max(start, f.data.length - 2);
        ranges.push({ path: f.path, start, end });
        expected.push(f.data.subarray(start, end + 1));
      }
      const got = await serve(ranges, blocking);
      assert.equal(got.status, 200);
      assert.equal(got.failed, false);
      assert.ok(got.body.equals(Buffer.concat(expected)), `${got.body.length} bytes, expected ${Buffer.concat(expected).length}`);
      await new Promise((r) => setTimeout(r, 50)); // closes are not waited for
      assert.equal(await openFds(), fdsBefore, 'no file left open');
    });

    it('mixes ranges held in memory (small chunks kept in the database) with files, byte-exact', async () => {
      const small = [randomBytes(1), randomBytes(10_000), randomBytes(16_384)];
      const ranges: FileRange[] = [
        { path: 'i/a', start: 0, end: 0, bytes: small[0] },
        { path: files[4].path, start: 0, end: files[4].data.length - 1 },
        { path: 'i/b', start: 100, end: 9_999, bytes: small[1] },
        { path: files[2].path, start: 5, end: 1000 },
        { path: 'i/c', start: 0, end: 16_383, bytes: small[2] },
      ];
      const expected = Buffer.concat([small[0], files[4].data, small[1].subarray(100), files[2].data.subarray(5, 1001), small[2]]);
      const got = await serve(ranges, blocking);
      assert.equal(got.failed, false);
      assert.ok(got.body.equals(expected), `${got.body.length} bytes, expected ${expected.length}`);
      const short = await serve([{ path: 'i/short', start: 0, end: 99, bytes: small[1].subarray(0, 50) }], blocking);
      assert.equal(short.failed, true, 'bytes shorter than the range fail the response');
    });

    it('reads consecutive ranges of one file (the chunks of a pack), then another file, then the first again, and closes both', async () => {
      const fdsBefore = await openFds();
      const big = files[6]!; // 2.5 MB: members at offsets, as a pack holds them
      const other = files[5]!;
      const ranges: FileRange[] = [
        { path: big.path, start: 0, end: 299_999 },
        { path: big.path, start: 300_000, end: 1_299_999 },
        { path: big.path, start: 1_300_000, end: 1_300_000 },
        { path: other.path, start: 10, end: 20 },
        { path: big.path, start: 2_000_000, end: 2_499_999 },
      ];
      const expected = Buffer.concat(ranges.map((r) => (r.path === big.path ? big : other).data.subarray(r.start, r.end + 1)));
      const got = await serve(ranges, blocking);
      assert.equal(got.failed, false);
      assert.ok(got.body.equals(expected), `${got.body.length} bytes, expected ${expected.length}`);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(await openFds(), fdsBefore, 'no file left open');
    });

    it('fails the response when a file is shorter than recorded, or missing', async () => {
      for (const bad of [{ path: files[3].path, start: 0, end: files[3].data.length + 10 }, { path: join(dir, 'missing'), start: 0, end: 9 }]) {
        const got = await serve([{ path: files[0].path, start: 0, end: 0 }, bad, { path: files[1].path, start: 0, end: 4095 }], blocking);
        assert.equal(got.failed, true, `${bad.path}: the sender rejected`);
        assert.ok(got.body.length < 1 + (bad.end - bad.start + 1) + 4096, 'never the whole body');
      }
    });
  });
}
