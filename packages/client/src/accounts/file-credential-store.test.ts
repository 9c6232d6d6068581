import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileCredentialStore } from './file-credential-store.ts';

describe('FileCredentialStore', () => {
  it('stores credentials 0600 and reads them back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'coffer-creds-'));
    try {
      const s = new FileCredentialStore(dir);
      assert.equal(await s.load(), null);
      await s.save({ accessToken: 'a', refreshToken: 'r', accessExpiresAt: 1 });
      assert.equal((await stat(s.path)).mode & 0o777, 0o600);
      assert.deepEqual(await s.load(), { accessToken: 'a', refreshToken: 'r', accessExpiresAt: 1 });
      await s.clear();
      assert.equal(await s.load(), null);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('withLock runs one holder at a time, across store objects (as across processes)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'coffer-creds-'));
    try {
      const inside: number[] = [];
      let max = 0;
      const work = (s: FileCredentialStore, i: number) => s.withLock(async () => {
        inside.push(i);
        max = Math.max(max, inside.length);
        await new Promise((r) => setTimeout(r, 30));
        inside.splice(inside.indexOf(i), 1);
        return i;
      });
      const results = await Promise.all([0, 1, 2, 3].map((i) => work(new FileCredentialStore(dir), i)));
      assert.deepEqual(results, [0, 1, 2, 3]);
      assert.equal(max, 1, 'never two holders at once');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('takes over a lock left by a process that died long ago', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'coffer-creds-'));
    try {
      const s = new FileCredentialStore(dir);
      await writeFile(`${s.path}.lock`, '999999');
      const old = new Date(Date.now() - 120_000);
      await utimes(`${s.path}.lock`, old, old);
      assert.equal(await s.withLock(async () => 'ran'), 'ran');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
