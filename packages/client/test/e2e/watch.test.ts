/**
 * Continuous sync, end to end: two real clients of one account, each
 * running watchAccount (the file watcher on its real folder, the server's
 * push channel, the debounced runs of `coffer sync --watch`) against a
 * real server. A file saved in one folder appears in the other, without
 * anyone calling sync.
 *
 * The latency of 20 changes (new files one way, edits the other, a rename,
 * a deletion) is measured from the write until the other folder holds the
 * result, and printed (p50/p95). It is asserted only against a generous
 * bound: each side debounces 400 ms, so ~1 s is the expected order.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { startTestServer, TEST_PASSWORD, type TestServer } from '../../../server/test/support/test-server.ts';
import { watchAccount } from '../../src/sync/watch.ts';
import { startClient, type TestClient } from '../support/sync-client.ts';

const BOUND_MS = 15_000;

interface Watching {
  client: TestClient;
  stop: AbortController;
  done: Promise<unknown>;
  log: string[];
  runs: number;
}

function startWatching(client: TestClient): Promise<Watching> {
  const w: Watching = { client, stop: new AbortController(), done: Promise.resolve(), log: [], runs: 0 };
  return new Promise((resolve, reject) => {
    w.done = watchAccount({ account: { folder: client.folder }, api: client.api }, async () => {
      w.runs++;
      return client.sync({ now: Date.now });
    }, (msg) => {
      w.log.push(msg);
      if (msg.startsWith('watching ')) resolve(w);
    }, w.stop.signal);
    w.done.catch(reject);
  });
}

/** Resolves with the time (ms since `from`) at which `check` first holds; polls every 10 ms. */
async function until(check: () => Promise<boolean>, from: number, what: string): Promise<number> {
  for (;;) {
    if (await check().catch(() => false)) return performance.now() - from;
    if (performance.now() - from > BOUND_MS) throw new Error(`${what}: not seen within ${BOUND_MS} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const holds = (c: TestClient, path: string, content: string) => async () => (await readFile(join(c.folder, path), 'utf8')) === content;
const gone = (c: TestClient, path: string) => async () => !(await readFile(join(c.folder, path), 'utf8').then(() => true, () => false));

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

describe('two clients watching their folders', () => {
  let s: TestServer;
  let a: Watching | undefined;
  let b: Watching | undefined;
  before(async () => { s = await startTestServer(); });
  after(async () => {
    for (const w of [a, b]) {
      if (!w) continue;
      w.stop.abort();
      await w.done.catch(() => {});
      await w.client.close();
    }
    await s?.close();
  });

  it('a file saved in one folder appears in the other; 20 changes, latency printed', async () => {
    await s.server.coffer.services.users.create({ username: 'watcher', password: TEST_PASSWORD });
    const desk = await startClient(s.url, 'watcher', TEST_PASSWORD, 'desk');
    const laptop = await startClient(s.url, 'watcher', TEST_PASSWORD, 'laptop');
    await desk.write('shared/start.txt', 'hello');
    await desk.sync();
    await laptop.sync();
    a = await startWatching(desk);
    b = await startWatching(laptop);

    const latencies: { what: string; ms: number }[] = [];
    const change = async (what: string, act: () => Promise<void>, seen: () => Promise<boolean>) => {
      const t0 = performance.now();
      await act();
      latencies.push({ what, ms: await until(seen, t0, what) });
    };
    // 12 new files, desk → laptop.
    for (let i = 0; i < 12; i++) await change(`new file ${i} desk → laptop`, () => desk.write(`shared/note-${i}.txt`, `note ${i}`), holds(laptop, `shared/note-${i}.txt`, `note ${i}`));
    // 6 edits, laptop → desk.
    for (let i = 0; i < 6; i++) await change(`edit ${i} laptop → desk`, () => laptop.write(`shared/note-${i}.txt`, `note ${i}, edited on the laptop`), holds(desk, `shared/note-${i}.txt`, `note ${i}, edited on the laptop`));
    // A rename and a deletion, desk → laptop.
    await change('rename desk → laptop', () => rename(join(desk.folder, 'shared/start.txt'), join(desk.folder, 'shared/renamed.txt')), async () => (await holds(laptop, 'shared/renamed.txt', 'hello')()) && (await gone(laptop, 'shared/start.txt')()));
    await change('delete desk → laptop', () => unlink(join(desk.folder, 'shared/note-11.txt')), gone(laptop, 'shared/note-11.txt'));

    assert.equal(latencies.length, 20);
    const sorted = latencies.map((l) => l.ms).sort((x, y) => x - y);
    const p50 = percentile(sorted, 50);
    const p95 = percentile(sorted, 95);
    console.log(`# watch latency over ${sorted.length} changes: p50 ${p50.toFixed(0)} ms, p95 ${p95.toFixed(0)} ms, max ${sorted.at(-1)!.toFixed(0)} ms (runs: desk ${a.runs}, laptop ${b.runs})`);
    for (const l of latencies) console.log(`#   ${l.what}: ${l.ms.toFixed(0)} ms`);
    assert.ok(p95 < BOUND_MS);

    // Both folders converge, and nothing failed along the way.
    await until(async () => JSON.stringify(await desk.listing()) === JSON.stringify(await laptop.listing()), performance.now(), 'both folders equal');
    const listing = await desk.listing();
    assert.equal(listing.filter((l) => l.startsWith('shared/note-')).length, 11);
    assert.ok(listing.includes('shared/renamed.txt=hello'));
    assert.deepEqual([...a.log, ...b.log].filter((m) => /failed|watcher:/.test(m)), []);
  });
});
