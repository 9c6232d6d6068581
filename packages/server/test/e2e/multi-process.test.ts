/**
 * Several `coffer server` processes on one PostgreSQL database and one S3
 * bucket serve one drive: any process serves any request, a change committed
 * through one reaches push listeners on another within a second (PostgreSQL
 * LISTEN/NOTIFY), a token revoked through one is refused by the others at
 * once and their streams close, two creators of one name through different
 * processes get one winner, and garbage collection (the admin CLI, a third
 * process) runs safely while uploads go through both servers.
 * Skipped, with the reason, when PostgreSQL is not reachable.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createTestDatabase, postgresUnavailable } from '../support/postgres.ts';
import { startS3Server, type S3TestServer } from '../support/s3-server.ts';
import { cliOk, getToken, runCli, spawnServer, type ServerProcess } from '../support/processes.ts';
import { openStream, percentile, type SseStream } from '../support/sse.ts';
import { LISTENER_APPLICATION_NAME } from '../../src/push/pg-notify.bus.ts';

const PASSWORD = 'multi-process-password-1';
const PUSH_DEADLINE_MS = 1_000;
const unavailable = await postgresUnavailable();

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const contentPath = (name: string) => `/api/v1/content/${encodeURIComponent(name)}`;

async function put(url: string, token: string, name: string, body: Uint8Array, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  const res = await fetch(url + contentPath(name), {
    method: 'PUT', body, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream', ...headers }, signal: AbortSignal.timeout(60_000),
  });
  return { status: res.status, text: await res.text() };
}

async function get(url: string, token: string, path: string): Promise<{ status: number; bytes: Buffer; text: string }> {
  const res = await fetch(url + path, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(60_000) });
  const bytes = Buffer.from(await res.arrayBuffer());
  return { status: res.status, bytes, text: res.status >= 300 ? bytes.toString('utf8') : '' };
}

async function call(url: string, token: string, method: string, path: string, json?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(url + path, {
    method, headers: { authorization: `Bearer ${token}`, ...(json !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: json !== undefined ? JSON.stringify(json) : undefined, signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

async function waitForListeners(admin: pg.Client, n: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await admin.query('select count(*)::int as n from pg_stat_activity where datname = current_database() and application_name = $1', [LISTENER_APPLICATION_NAME]);
    if (r.rows[0].n === n) return;
    if (Date.now() > deadline) throw new Error(`${r.rows[0].n} listening connections, expected ${n}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

describe('several coffer server processes on one PostgreSQL and one S3 bucket', { skip: unavailable ?? false }, () => {
  let db: { url: string; drop(): Promise<void> };
  let s3: S3TestServer;
  let env: Record<string, string>;
  const dirs: string[] = [];
  let a: ServerProcess;
  let b: ServerProcess;
  /** alice's tokens: one issued by each process. */
  let tokenA: string;
  let tokenB: string;
  let bobToken: string;
  const streams: SseStream[] = [];

  async function storage(): Promise<string[]> {
    const dir = await mkdtemp(join(tmpdir(), 'coffer-multi-'));
    dirs.push(dir);
    return ['--data', dir];
  }

  async function stream(url: string, token: string): Promise<SseStream> {
    const st = await openStream(url, token);
    streams.push(st);
    assert.equal(st.status, 200);
    await st.waitFor((e) => e.event === 'ready', 5_000);
    return st;
  }

  before(async () => {
    db = await createTestDatabase();
    s3 = await startS3Server();
    env = {
      COFFER_DATABASE_URL: db.url, COFFER_S3_ENDPOINT: s3.endpoint, COFFER_S3_BUCKET: s3.bucket, COFFER_S3_REGION: s3.region,
      COFFER_S3_ACCESS_KEY_ID: s3.accessKeyId, COFFER_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
    };
    // Both start at once on a fresh database: the migrations must not trip over each other either.
    [a, b] = await Promise.all([spawnServer(await storage(), { env }), spawnServer(await storage(), { env })]);
    assert.notEqual(a.url, b.url);
    await cliOk(['admin', 'create-user', 'alice', '--password', PASSWORD, ...(await storage())], { env });
    await cliOk(['admin', 'create-user', 'bob', '--password', PASSWORD, ...(await storage())], { env });
    // At once, on purpose: sign-ins racing on the shared per-IP throttle row must all get through.
    [tokenA, tokenB, bobToken] = await Promise.all([getToken(a.url, 'alice', PASSWORD), getToken(b.url, 'alice', PASSWORD), getToken(a.url, 'bob', PASSWORD)]);
  });

  after(async () => {
    for (const st of streams) st.close();
    await Promise.all([a?.kill(), b?.kill()]);
    await db?.drop().catch(() => {});
    await s3?.stop().catch(() => {});
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('both report PostgreSQL and S3, and one instance id', async () => {
    for (const p of [a, b]) assert.match(p.output(), /"database":"postgres","blobs":"s3"/);
    const [da, db2] = await Promise.all([call(a.url, tokenA, 'GET', '/api/v1/drive'), call(b.url, tokenB, 'GET', '/api/v1/drive')]);
    assert.equal(da.body.instanceId, db2.body.instanceId);
    assert.equal(da.body.cursor, db2.body.cursor);
  });

  it('a file uploaded through A downloads byte-exact through B (a token issued by either works on both)', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 12345);
    const up = await put(a.url, tokenA, 'big.bin', data);
    assert.equal(up.status, 201, up.text);
    for (const token of [tokenA, tokenB]) {
      const down = await get(b.url, token, contentPath('big.bin'));
      assert.equal(down.status, 200, down.text);
      assert.equal(down.bytes.length, data.length);
      assert.equal(sha(down.bytes), sha(data));
    }
  });

  it('a commit on A reaches a listener on B within a second, and the other way round; another drive hears nothing', async () => {
    const onB = await stream(b.url, tokenB);
    const onA = await stream(a.url, tokenA);
    const bobOnB = await stream(b.url, bobToken);
    const times: number[] = [];
    for (let i = 0; i < 30; i++) {
      const from = onB.events.length;
      const t0 = performance.now();
      const r = await put(a.url, tokenA, `cross-${i}.txt`, Buffer.from(`cross ${i}`));
      assert.equal(r.status, 201, r.text);
      const e = await onB.waitFor((ev) => ev.event === 'changed', 3_000, from);
      times.push(e.at - t0);
      await new Promise((res) => setTimeout(res, 120)); // past the coalescing window
    }
    const p50 = percentile(times, 50);
    const p95 = percentile(times, 95);
    console.log(`push latency (A commits, listener on B, PostgreSQL NOTIFY), request start → event, n=${times.length}: p50 ${p50.toFixed(1)} ms, p95 ${p95.toFixed(1)} ms, max ${Math.max(...times).toFixed(1)} ms`);
    assert.ok(Math.max(...times) < PUSH_DEADLINE_MS, `slowest: ${Math.max(...times).toFixed(0)} ms`);

    const from = onA.events.length;
    const t0 = performance.now();
    assert.equal((await put(b.url, tokenB, 'from-b.txt', Buffer.from('from b'))).status, 201);
    const e = await onA.waitFor((ev) => ev.event === 'changed', PUSH_DEADLINE_MS, from);
    assert.ok(e.at - t0 < PUSH_DEADLINE_MS);
    // The position told is the feed's last one, as either process reports it.
    const drive = await call(a.url, tokenA, 'GET', '/api/v1/drive');
    const last = Number(Buffer.from(drive.body.cursor, 'base64url').toString().split('|')[3]);
    assert.equal((JSON.parse(e.data) as { position: number }).position, last);

    await new Promise((res) => setTimeout(res, 300));
    assert.deepEqual(bobOnB.events.map((ev) => ev.event), ['ready'], "bob's stream hears nothing of alice's drive");
    for (const st of [onA, onB, bobOnB]) st.close();
  });

  it('a token revoked through A is refused by B on its very next request, and its stream on B closes within a second', async () => {
    const token = await getToken(b.url, 'alice', PASSWORD);
    const doomed = await stream(b.url, token);
    const survivor = await stream(b.url, tokenB);
    assert.equal((await call(b.url, token, 'GET', '/api/v1/me')).status, 200);
    const t0 = performance.now();
    assert.equal((await call(a.url, token, 'POST', '/api/v1/auth/logout')).status, 204);
    const next = await call(b.url, token, 'GET', '/api/v1/me');
    assert.equal(next.status, 401);
    assert.equal(next.body.error.code, 'UNAUTHENTICATED');
    const endedAt = await doomed.waitEnd(PUSH_DEADLINE_MS);
    console.log(`stream on B closed ${(endedAt - t0).toFixed(1)} ms after the revoke request to A started`);
    assert.equal(doomed.events.at(-1)?.event, 'revoked');
    const again = await openStream(b.url, token);
    streams.push(again);
    assert.equal(again.status, 401);
    assert.equal(survivor.endedAt, null, "alice's other token keeps its stream");
    assert.equal((await call(b.url, tokenB, 'GET', '/api/v1/me')).status, 200);
    survivor.close();
  });

  it('two creators of one name through A and B: exactly one 201, the other 412 or 409, and the content is the winner\'s', async () => {
    for (let round = 0; round < 8; round++) {
      const name = `race-${round}.bin`;
      const bodies = [randomBytes(200_000 + round), randomBytes(300_000 + round)];
      const answers = await Promise.all([
        put(a.url, tokenA, name, bodies[0], { 'if-none-match': '*' }),
        put(b.url, tokenB, name, bodies[1], { 'if-none-match': '*' }),
      ]);
      const statuses = answers.map((x) => x.status);
      const winners = statuses.filter((st) => st === 201).length;
      assert.equal(winners, 1, `round ${round}: ${statuses} ${answers.map((x) => x.text).join(' | ')}`);
      const loser = statuses.find((st) => st !== 201)!;
      assert.ok(loser === 412 || loser === 409, `round ${round}: the loser got ${loser}`);
      const winner = bodies[statuses.indexOf(201)];
      for (const p of [a, b]) {
        const down = await get(p.url, tokenA, contentPath(name));
        assert.equal(down.status, 200);
        assert.equal(sha(down.bytes), sha(winner), `round ${round}: content through ${p === a ? 'A' : 'B'}`);
      }
    }
  });

  it('emptying the recycle bin through A and B at once gives the bytes back once', async () => {
    const before = (await call(a.url, tokenA, 'GET', '/api/v1/me')).body.usedBytes as number;
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 6; i++) {
        const up = await put(a.url, tokenA, `bin-${round}-${i}.bin`, randomBytes(50_000 + i));
        assert.equal(up.status, 201);
        assert.equal((await call(b.url, tokenB, 'DELETE', `/api/v1/items/${JSON.parse(up.text).id}`)).status, 200);
      }
      const answers = await Promise.all([call(a.url, tokenA, 'DELETE', '/api/v1/trash'), call(b.url, tokenB, 'DELETE', '/api/v1/trash')]);
      assert.deepEqual(answers.map((x) => x.status), [200, 200]);
      assert.equal((await call(b.url, tokenB, 'GET', '/api/v1/me')).body.usedBytes, before, `round ${round}`);
    }
  });

  it('admin gc --grace 0 while uploads go through both processes: storage stays consistent and every acknowledged file downloads exact', async () => {
    // A few payloads reused on purpose: re-uploading content whose chunks were just freed races the collector.
    const payloads = Array.from({ length: 6 }, (_, i) => randomBytes(1_500_000 + i * 100_000));
    // Held only by files that are deleted again at once: their chunks become garbage, then come back.
    const transient = Array.from({ length: 3 }, (_, i) => randomBytes(1_200_000 + i * 100_000));
    /** name → sha of the last acknowledged content (null: deleted). */
    const acknowledged = new Map<string, string | null>();
    const errors: string[] = [];
    let uploads = 0;
    let stop = false;

    let resent = 0;
    /**
     * An upload that reused a chunk the collector removed meanwhile is refused (503 STORAGE_UNAVAILABLE,
     * nothing committed) and a client sends it again: that is the designed answer, counted here.
     */
    const putResending = async (url: string, token: string, name: string, body: Uint8Array) => {
      for (let attempt = 0; ; attempt++) {
        const r = await put(url, token, name, body);
        if (r.status !== 503 || !r.text.includes('STORAGE_UNAVAILABLE') || attempt === 3) return r;
        resent++;
      }
    };
    const worker = async (w: number, url: string, token: string) => {
      for (let i = 0; !stop && i < 200; i++) {
        const name = `gc-${w}-${i % 4}.bin`;
        const body = payloads[(i + w) % payloads.length];
        const r = await putResending(url, token, name, body);
        if (r.status !== 200 && r.status !== 201) { errors.push(`${name}: ${r.status} ${r.text}`); continue; }
        acknowledged.set(name, sha(body));
        uploads++;
        if (i % 2 === 1) {
          // Free chunks for the collector: upload a file, delete it, empty the recycle bin.
          const tmp = `tmp-${w}-${i}.bin`;
          const t = await putResending(url, token, tmp, transient[(i + w) % transient.length]);
          if (t.status !== 201) { errors.push(`${tmp}: ${t.status} ${t.text}`); continue; }
          if ((await call(url, token, 'DELETE', `/api/v1/items/${JSON.parse(t.text).id}`)).status !== 200) errors.push(`delete ${tmp} failed`);
          const empty = await call(url, token, 'DELETE', '/api/v1/trash');
          if (empty.status !== 200) errors.push(`empty trash: ${empty.status} ${JSON.stringify(empty.body)}`);
        }
        if (i % 5 === 4) {
          const item = await call(url, token, 'GET', `/api/v1/items/by-path?path=${encodeURIComponent(name)}`);
          if (item.status === 200 && (await call(url, token, 'DELETE', `/api/v1/items/${item.body.id}`)).status === 200) acknowledged.set(name, null);
        }
      }
    };
    const gcRuns: string[] = [];
    const collector = async () => {
      for (let i = 0; i < 6; i++) {
        const r = await runCli(['admin', 'gc', '--grace', '0', ...(await storage())], { env, timeoutMs: 60_000 });
        if (r.code !== 0) errors.push(`gc exited ${r.code}: ${r.stderr}`);
        gcRuns.push(r.stdout.trim());
      }
      stop = true;
    };
    await Promise.all([worker(0, a.url, tokenA), worker(1, b.url, tokenB), worker(2, a.url, tokenB), worker(3, b.url, tokenA), collector()]);
    assert.deepEqual(errors, []);
    const collected = gcRuns.map((line) => (JSON.parse(line) as { chunksCollected: number }).chunksCollected);
    console.log(`gc under load: ${uploads} uploads acknowledged, ${gcRuns.length} gc runs collected ${collected.join('+')} chunks, ${resent} uploads refused (a reused chunk was collected) and sent again`);
    assert.ok(uploads >= 8, `only ${uploads} uploads went through while gc ran`);

    const check = await runCli(['admin', 'check', '--json', ...(await storage())], { env, timeoutMs: 60_000 });
    const report = JSON.parse(check.stdout) as { problems: { severity: string; kind: string; detail: string }[] };
    assert.deepEqual(report.problems.filter((p) => p.severity === 'error'), [], check.stdout);
    assert.equal(check.code, 0);

    for (const [name, hash] of acknowledged) {
      for (const p of [a, b]) {
        const down = await get(p.url, tokenA, contentPath(name));
        if (hash === null) {
          assert.equal(down.status, 404, `${name} was deleted`);
        } else {
          assert.equal(down.status, 200, `${name} through ${p === a ? 'A' : 'B'}: ${down.text}`);
          assert.equal(sha(down.bytes), hash, `${name} through ${p === a ? 'A' : 'B'}`);
        }
      }
    }
    assert.equal(sha((await get(b.url, tokenB, contentPath('big.bin'))).bytes).length, 64);
  });

  it('when the LISTEN connections drop, they come back, and a change or revocation made meanwhile still arrives', async () => {
    const listener = await stream(b.url, tokenB);
    const token = await getToken(a.url, 'alice', PASSWORD);
    const doomed = await stream(b.url, token);
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      const kill = async () => (await admin.query(
        'select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and application_name = $1', [LISTENER_APPLICATION_NAME])).rowCount;
      assert.equal(await kill(), 2, 'one listening connection per server');
      // Made while nobody listens: the NOTIFYs are lost; the reconnect's resync must make up for them.
      const from = listener.events.length;
      const t0 = performance.now();
      assert.equal((await put(a.url, tokenA, 'while-deaf.txt', Buffer.from('nobody listened'))).status, 201);
      assert.equal((await call(a.url, token, 'POST', '/api/v1/auth/logout')).status, 204);
      const e = await listener.waitFor((ev) => ev.event === 'changed', 5_000, from);
      await doomed.waitEnd(5_000);
      console.log(`after the LISTEN connections were killed: change told after ${(e.at - t0).toFixed(0)} ms, revoked stream closed after ${(doomed.endedAt! - t0).toFixed(0)} ms`);
      await waitForListeners(admin, 2);
      for (const p of [a, b]) assert.match(p.output(), /push: LISTEN connection lost; reconnecting/);
      // And push works as before once reconnected.
      const from2 = listener.events.length;
      const t1 = performance.now();
      assert.equal((await put(a.url, tokenA, 'heard-again.txt', Buffer.from('heard'))).status, 201);
      const e2 = await listener.waitFor((ev) => ev.event === 'changed', PUSH_DEADLINE_MS, from2);
      assert.ok(e2.at - t1 < PUSH_DEADLINE_MS);
    } finally {
      await admin.end();
      listener.close();
    }
  });

  it('both processes shut down cleanly with streams open', async () => {
    const st = await stream(b.url, tokenA);
    a.child.kill('SIGTERM');
    b.child.kill('SIGTERM');
    const [ea, eb] = await Promise.all([a.waitExit(15_000), b.waitExit(15_000)]);
    assert.equal(ea.code, 0, a.output().slice(-2000));
    assert.equal(eb.code, 0, b.output().slice(-2000));
    await st.waitEnd(2_000);
  });
});
