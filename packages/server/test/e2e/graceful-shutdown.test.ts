/**
 * SIGTERM on a real server process: the upload in flight still completes
 * (201, committed), new connections are refused or answered 503, and the
 * process exits 0 once the last request is done.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { cutAll } from '@coffer/protocol';
import { createCoffer } from '../../src/app.ts';
import { loadConfig } from '../../src/config/load-config.ts';
import { manifestHash } from '../../src/services/chunk-writer.ts';
import { getToken, spawnServer, startUpload, storageArgs, uploadsInProgress, waitFor, type ServerProcess } from '../support/processes.ts';

const MiB = 1024 * 1024;
const PASSWORD = 'graceful-password-1';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A GET on a fresh connection: its status, or the connection error's code. */
function probe(url: string): Promise<number | string> {
  return new Promise((resolve) => {
    const req = request(`${url}/healthz`, { agent: false, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });
    req.on('timeout', () => req.destroy(new Error('probe timed out')));
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    req.end();
  });
}

function contentHash(data: Buffer): string {
  const hashes: string[] = [];
  let off = 0;
  for (const n of cutAll(data)) {
    hashes.push(createHash('sha256').update(data.subarray(off, off + n)).digest('hex'));
    off += n;
  }
  return manifestHash(hashes);
}

describe('graceful shutdown on SIGTERM', () => {
  it('finishes the upload in flight, refuses new work, exits 0', async (t) => {
    const dataDir = await mkdtemp(join(tmpdir(), 'coffer-graceful-'));
    const config = loadConfig({ flags: { dataDir, logLevel: 'silent' }, env: {} });
    let server: ServerProcess | undefined;
    t.after(async () => {
      await server?.kill();
      await rm(dataDir, { recursive: true, force: true });
    });
    const setup = await createCoffer(config);
    await setup.services.users.create({ username: 'graceful', password: PASSWORD });
    await setup.close();

    server = await spawnServer(storageArgs(dataDir));
    const token = await getToken(server.url, 'graceful', PASSWORD);
    assert.equal(await probe(server.url), 200);

    const body = randomBytes(3 * MiB + 123);
    const up = startUpload(server.url, token, 'slow.bin', body.length);
    await up.write(body.subarray(0, MiB));
    await waitFor('the upload to be in progress', async () => (await uploadsInProgress(server!.url)) === 1, 15_000, 50);

    server.child.kill('SIGTERM');
    await waitFor('the server to start shutting down', () => server!.output().includes('shutting down'), 10_000, 20);
    const during = await probe(server.url);
    assert.ok(during === 'ECONNREFUSED' || during === 503, `a new connection after SIGTERM got ${during}`);
    t.diagnostic(`a new connection after SIGTERM: ${during}`);
    assert.equal(server.child.exitCode, null, 'the process waits for the upload in flight');

    // The rest of the body, slowly.
    for (let off = MiB; off < body.length; off += 256 * 1024) {
      await up.write(body.subarray(off, Math.min(off + 256 * 1024, body.length)));
      await sleep(20);
    }
    up.end();
    const res = await up.response;
    assert.equal(res.status, 201, res.body);
    const item = JSON.parse(res.body) as { name: string; size: number; contentHash: string };
    assert.equal(item.size, body.length);
    assert.equal(item.contentHash, contentHash(body));

    assert.deepEqual(await server.waitExit(30_000), { code: 0, signal: null });
    assert.equal(await probe(server.url), 'ECONNREFUSED');

    // The upload was committed for good: it is there when the data is opened again.
    const after = await createCoffer(config);
    try {
      const row = await after.metadata.db.selectFrom('items').selectAll().where('name', '=', 'slow.bin').executeTakeFirstOrThrow();
      assert.equal(row.size, body.length);
      assert.equal(row.content_hash, item.contentHash);
      const report = await after.services.check.check();
      assert.deepEqual(report.problems, []);
    } finally {
      await after.close();
    }
  });
});
