/**
 * The change matrix (test/scenarios/change-matrix.ts) over real parts: a
 * real server on a random port, two real client folders. Client "phone"
 * makes the remote side's changes and syncs them to the server; client
 * "laptop" makes the local side's changes and syncs; then both must hold
 * exactly the promised tree.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startTestServer, TEST_PASSWORD, type TestServer } from '../../../server/test/support/test-server.ts';
import { SCENARIOS } from '../scenarios/change-matrix.ts';
import { startClient } from '../support/sync-client.ts';

async function applyStep(folder: string, step: string): Promise<void> {
  const verb = step.slice(0, step.indexOf(' '));
  const rest = step.slice(step.indexOf(' ') + 1);
  if (verb === 'add' && rest.endsWith('/')) await mkdir(join(folder, rest), { recursive: true });
  else if (verb === 'add' || verb === 'edit') {
    const [p, c] = rest.split('=');
    await writeFile(join(folder, p), c);
  } else if (verb === 'rm') await rm(join(folder, rest), { recursive: true });
  else if (verb === 'mv') {
    const [from, to] = rest.split(' -> ');
    await rename(join(folder, from), join(folder, to));
  } else throw new Error(`unknown step ${step}`);
}

describe('change matrix over a real server and real folders', () => {
  let s: TestServer;
  before(async () => { s = await startTestServer(); });
  after(async () => { await s?.close(); });

  SCENARIOS.forEach((sc, i) => {
    it(sc.name, async () => {
      const user = `matrix${i}`;
      await s.server.coffer.services.users.create({ username: user, password: TEST_PASSWORD });
      const laptop = await startClient(s.url, user, TEST_PASSWORD, 'laptop');
      const phone = await startClient(s.url, user, TEST_PASSWORD, 'phone');
      try {
        for (const p of sc.base) await applyStep(laptop.folder, `add ${p}`);
        await laptop.sync();
        await phone.sync();
        assert.deepEqual(await phone.listing(), await laptop.listing(), 'both start from the base');
        for (const step of sc.remote) await applyStep(phone.folder, step);
        await phone.sync();
        for (const step of sc.local) await applyStep(laptop.folder, step);
        const report = await laptop.sync();
        await phone.sync();
        const expected = sc.expect.map((e) => e.replace('{conflict}', ' (conflict from laptop 2026-11-25)')).sort();
        assert.deepEqual(await laptop.listing(), expected, `laptop (skipped: ${JSON.stringify(report.skipped)})`);
        assert.deepEqual(await phone.listing(), expected, 'phone');
        const again = await laptop.sync();
        assert.equal(again.rounds, 0, 'nothing left to do');
      } finally {
        await laptop.close();
        await phone.close();
      }
    });
  });
});
