/**
 * The sync-protocol rows (docs/sync-protocol.md), driven by a small Node client
 * written here (fetch, keep-alive), against a fresh Coffer server:
 *
 * - delta:  a big file cut with the FastCDC chunker and uploaded through the
 *           chunk protocol (untimed round 1, also reported), then 1 MiB in its
 *           middle overwritten; round 2 (timed) re-cuts and hashes the whole
 *           file, opens a session, asks `missing`, sends only those chunks
 *           and commits with ifMatch. Bytes sent = request bodies of round 2.
 * - small:  N small files: session, `missing` (≤ 10,000 hashes a request),
 *           `chunks` (≤ 1000 chunks or ≤ 8 MiB a request), `commit-batch`
 *           (≤ 1000 files a request). Timed from reading the files to the
 *           last commit answer. The peer is `rclone copy` to rclone serve webdav.
 * - push:   one SSE listener on /api/v1/changes/stream; another connection
 *           commits M small files one at a time; latency = from the commit's
 *           HTTP response to the `changed` event carrying a position ≥ it.
 * - feed:   K changes made with commit-batch of empty files (1000 a request),
 *           then the whole feed read from the cursor taken before, limit=5000.
 */
import type { CommitFile } from '../../packages/server/src/services/upload-session.service.ts';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, copyFileSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { setImmediate } from 'node:timers/promises';
import { Chunker } from '@coffer/protocol';
import { readAt, MiB } from './fixtures.ts';
import { run } from './proc.ts';
import type { Server } from './peers.ts';

export interface SyncResult {
  ok: boolean;
  seconds: number;
  error: string;
  /** Row-specific figures (bytes sent, latencies, counts). */
  extra?: Record<string, number>;
  latenciesMs?: number[];
}

const fail = (error: string, seconds = NaN): SyncResult => ({ ok: false, seconds, error });

/** A chunk of a local file: where it is and its SHA-256. */
interface ChunkRef {
  hash: string;
  offset: number;
  length: number;
}

const sha256hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** The content hash the server reports: SHA-256 over the chunks' binary digests, in order. */
export function manifestHash(hashes: readonly string[]): string {
  const h = createHash('sha256');
  for (const x of hashes) h.update(Buffer.from(x, 'hex'));
  return h.digest('hex');
}

/**
 * Cuts a file with the streaming chunker (8 MiB reads) and hashes every chunk.
 * It yields to the event loop after every read: a cut of 1 GiB blocking the
 * loop for seconds kept fetch (undici) from seeing the server close its idle
 * keep-alive socket (Node's default keepAliveTimeout is 5 s), so the next
 * request went out on a dead socket ("other side closed").
 */
export async function cutFile(file: string): Promise<ChunkRef[]> {
  const fd = openSync(file, 'r');
  const out: ChunkRef[] = [];
  let offset = 0;
  const take = (chunks: Uint8Array[]) => {
    for (const c of chunks) {
      out.push({ hash: sha256hex(c), offset, length: c.length });
      offset += c.length;
    }
  };
  try {
    const chunker = new Chunker();
    for (;;) {
      const piece = Buffer.allocUnsafe(8 * MiB); // fresh each time: the chunker keeps views of pieces
      const n = readSync(fd, piece, 0, piece.length, null);
      if (n <= 0) break;
      take(chunker.push(piece.subarray(0, n)));
      await setImmediate();
    }
    take(chunker.finish());
  } finally {
    closeSync(fd);
  }
  return out;
}

/** Frames `[4-byte big-endian length][bytes]` for the chunks endpoint. */
function frames(chunks: readonly Uint8Array[]): Buffer {
  const total = chunks.reduce((a, c) => a + 4 + c.length, 0);
  const buf = Buffer.allocUnsafe(total);
  let at = 0;
  for (const c of chunks) {
    buf.writeUInt32BE(c.length, at);
    buf.set(c, at + 4);
    at += 4 + c.length;
  }
  return buf;
}

/** A file of a commit, as the server defines it. */
type FileCommit = CommitFile;

interface Item {
  id: string;
  etag: string;
  contentHash: string | null;
  size: number;
}

/** The sync protocol over fetch; counts request-body bytes and requests. */
export class SyncClient {
  readonly base: string;
  readonly headers: Record<string, string>;
  bytesSent = 0;
  requests = 0;
  #lastCall = 0;

  constructor(server: Server) {
    this.base = new URL(server.url('x')).origin;
    this.headers = server.authHeaders;
  }

  async call<T>(method: string, path: string, body: unknown, ok: readonly number[], timeoutMs = 120_000): Promise<T> {
    let payload: string | Buffer | undefined;
    const headers: Record<string, string> = { ...this.headers };
    if (Buffer.isBuffer(body)) {
      payload = body;
      headers['content-type'] = 'application/octet-stream';
    } else if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['content-type'] = 'application/json';
    }
    // After a long synchronous stretch (warming, sync, hashing) let the loop see sockets the server closed meanwhile.
    if (performance.now() - this.#lastCall > 1000) await setImmediate();
    this.requests++;
    this.bytesSent += payload === undefined ? 0 : Buffer.byteLength(payload);
    let res: Response;
    try {
      res = await fetch(this.base + path, { method, headers, body: payload, signal: AbortSignal.timeout(timeoutMs) });
    } catch (e) {
      const cause = (e as Error & { cause?: Error & { code?: string } }).cause;
      throw new Error(`${method} ${path}: ${(e as Error).message}${cause ? ` (${cause.code ?? ''} ${cause.message})` : ''}`);
    }
    const text = await res.text();
    this.#lastCall = performance.now();
    if (!ok.includes(res.status)) throw new Error(`${method} ${path}: HTTP ${res.status} ${text.slice(0, 400)}`);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  session(): Promise<string> {
    return this.call<{ uploadId: string }>('POST', '/api/v1/uploads', undefined, [201]).then((r) => r.uploadId);
  }

  /** `missing` in requests of ≤ 10,000 hashes. */
  async missing(id: string, hashes: readonly string[]): Promise<Set<string>> {
    const out = new Set<string>();
    for (let i = 0; i < hashes.length; i += 10_000) {
      const r = await this.call<{ missing: string[] }>('POST', `/api/v1/uploads/${id}/missing`, { hashes: hashes.slice(i, i + 10_000) }, [200]);
      for (const h of r.missing) out.add(h);
    }
    return out;
  }

  /** Sends chunks in requests of ≤ maxChunks chunks and ≤ maxBytes bytes; checks the server stored each. */
  async putChunks(id: string, count: number, get: (i: number) => { hash: string; bytes: Uint8Array }, maxChunks: number, maxBytes: number): Promise<void> {
    for (let i = 0; i < count; ) {
      const batch: Uint8Array[] = [];
      const want: string[] = [];
      let bytes = 0;
      while (i < count && batch.length < maxChunks) {
        const c = get(i);
        if (batch.length > 0 && bytes + c.bytes.length > maxBytes) break;
        batch.push(c.bytes);
        want.push(c.hash);
        bytes += c.bytes.length;
        i++;
      }
      const r = await this.call<{ stored: string[] }>('PUT', `/api/v1/uploads/${id}/chunks`, frames(batch), [200], 300_000);
      const got = new Set(r.stored);
      const lost = want.filter((h) => !got.has(h));
      if (lost.length) throw new Error(`PUT chunks: ${lost.length} of ${want.length} sent chunks not in "stored" (first ${lost[0]})`);
    }
  }

  commit(id: string, file: FileCommit, ok: readonly number[]): Promise<Item> {
    return this.call<Item>('POST', `/api/v1/uploads/${id}/commit`, file, ok);
  }

  /** commit-batch in requests of ≤ perRequest files; throws unless every file got one of `ok`. */
  async commitBatch(id: string, files: readonly FileCommit[], perRequest: number, ok: readonly number[]): Promise<void> {
    for (let i = 0; i < files.length; i += perRequest) {
      const last = i + perRequest >= files.length;
      const r = await this.call<{ results: { status: number; error?: { code: string; message: string } }[] }>(
        'POST', `/api/v1/uploads/${id}/commit-batch`, { files: files.slice(i, i + perRequest), keepSession: !last }, [200], 300_000);
      if (r.results.length !== Math.min(perRequest, files.length - i)) throw new Error(`commit-batch: ${r.results.length} results for ${Math.min(perRequest, files.length - i)} files`);
      const bad = r.results.findIndex((x) => !ok.includes(x.status));
      if (bad >= 0) throw new Error(`commit-batch: file ${i + bad} got ${r.results[bad].status} ${JSON.stringify(r.results[bad].error)}`);
    }
  }

  folder(path: string): Promise<Item> {
    return this.call<Item>('POST', '/api/v1/folders', { path }, [201]);
  }

  drive(): Promise<{ instanceId: string; rootId: string; cursor: string }> {
    return this.call('GET', '/api/v1/drive', undefined, [200]);
  }
}

// ---- delta: re-commit a big file after changing 1 MiB in its middle -------------

/** What round 1 left for round 2. */
export interface DeltaState {
  client: SyncClient;
  item: Item;
  size: number;
}

/** Uploads a chunk list of `file` in one session and commits it. */
async function uploadFile(c: SyncClient, file: string, chunks: readonly ChunkRef[], target: Omit<FileCommit, 'chunks' | 'size'>, ok: number[]): Promise<{ item: Item; sent: number }> {
  const id = await c.session();
  const missing = await c.missing(id, chunks.map((x) => x.hash));
  const seen = new Set<string>();
  const send = chunks.filter((x) => missing.has(x.hash) && !seen.has(x.hash) && seen.add(x.hash));
  await c.putChunks(id, send.length, (i) => ({ hash: send[i].hash, bytes: readAt(file, send[i].offset, send[i].length) }), 1000, 32 * MiB);
  const size = chunks.reduce((a, x) => a + x.length, 0);
  return { item: await c.commit(id, { ...target, chunks: chunks.map((x) => x.hash), size }, ok), sent: send.length };
}

/** Round 1: cut + hash `bigFile`, upload it as delta/big.bin (folder made untimed). */
export async function deltaFirst(server: Server, bigFile: string, folderId: string): Promise<SyncResult & { state?: DeltaState }> {
  const c = new SyncClient(server);
  try {
    const t0 = performance.now();
    const chunks = await cutFile(bigFile);
    const size = chunks.reduce((a, x) => a + x.length, 0);
    const { item } = await uploadFile(c, bigFile, chunks, { parentId: folderId, name: 'big.bin', mustNotExist: true }, [201]);
    const seconds = (performance.now() - t0) / 1000;
    if (item.contentHash !== manifestHash(chunks.map((x) => x.hash))) throw new Error(`round 1: server contentHash ${item.contentHash} ≠ local manifest hash`);
    return { ok: true, seconds, error: '', extra: { bytesSent: c.bytesSent, requests: c.requests, chunks: chunks.length }, state: { client: c, item, size } };
  } catch (e) {
    return fail(`round 1: ${(e as Error).message}`);
  }
}

/**
 * Untimed: `modFile` = `bigFile` with 1 MiB of random bytes written over its
 * middle. Edit k (0, 1, 2, …) of a run sits size/(2(edits+1))·k after the
 * middle (at most 64 MiB apart), so it does not
 * find chunks an earlier edit already uploaded (the cut points after an edit
 * are content-defined, and a second edit at the same place would reuse them).
 */
export function makeEdit(bigFile: string, modFile: string, size: number, k = 0, edits = 1): { at: number; patch: Buffer } {
  copyFileSync(bigFile, modFile);
  const step = Math.min(64 * MiB, Math.floor(size / (2 * (edits + 1))));
  const at = Math.max(0, Math.min(size - MiB, Math.floor(size / 2) - MiB / 2 + k * step));
  const patch = randomBytes(Math.min(MiB, size));
  const fd = openSync(modFile, 'r+');
  try {
    writeSync(fd, patch, 0, patch.length, at);
  } finally {
    closeSync(fd);
  }
  return { at, patch };
}

/**
 * Round 2: cut + hash the whole modified file, session, missing, send only
 * the missing chunks, commit {itemId, ifMatch}. Bytes sent = request bodies.
 */
export async function deltaSecond(server: Server, st: DeltaState, modFile: string): Promise<SyncResult & { contentHash?: string }> {
  const c = st.client;
  c.bytesSent = 0;
  c.requests = 0;
  try {
    const t0 = performance.now();
    const chunks = await cutFile(modFile);
    const cutSeconds = (performance.now() - t0) / 1000;
    const { item: updated, sent } = await uploadFile(c, modFile, chunks, { itemId: st.item.id, ifMatch: st.item.etag }, [200]);
    const seconds = (performance.now() - t0) / 1000;
    if (updated.contentHash !== manifestHash(chunks.map((x) => x.hash))) throw new Error(`round 2: server contentHash ${updated.contentHash} ≠ local manifest hash`);
    st.item = updated; // the next edit commits against this version
    return { ok: true, seconds, error: '', extra: { bytesSent: c.bytesSent, requests: c.requests, chunks: chunks.length, chunksSent: sent, cutSeconds } };
  } catch (e) {
    return fail(`round 2: ${(e as Error).message}`);
  }
}

/** Untimed: the patched range, read back through the content API. */
export async function checkEdit(server: Server, path: string, at: number, patch: Buffer): Promise<string | null> {
  const res = await fetch(server.url(path), { headers: { ...server.authHeaders, range: `bytes=${at}-${at + patch.length - 1}` }, signal: AbortSignal.timeout(30_000) });
  const got = Buffer.from(await res.arrayBuffer());
  return res.status === 206 && got.equals(patch) ? null : `GET ${path} Range at ${at}: HTTP ${res.status}, ${got.length} bytes, ${got.equals(patch) ? 'matches' : 'differs from the patch'}`;
}

// ---- small: N small files through the chunk protocol ------------------------------

/** Uploads every file in `files` (each < 256 KiB: one chunk) into folder `dir`, creating them. */
export async function smallFilesCoffer(server: Server, files: readonly string[], names: readonly string[], dir: string): Promise<SyncResult> {
  const c = new SyncClient(server);
  try {
    const folder = await c.folder(dir);
    c.requests = 0;
    c.bytesSent = 0;
    const t0 = performance.now();
    const data = files.map((f) => readFileSync(f));
    const hashes = data.map((d) => sha256hex(d));
    const id = await c.session();
    const missing = await c.missing(id, hashes);
    const send: number[] = [];
    const seen = new Set<string>();
    hashes.forEach((h, i) => {
      if (missing.has(h) && !seen.has(h)) {
        seen.add(h);
        send.push(i);
      }
    });
    await c.putChunks(id, send.length, (i) => ({ hash: hashes[send[i]], bytes: data[send[i]] }), 1000, 8 * MiB);
    const commits = data.map((d, i): FileCommit => ({ parentId: folder.id, name: names[i], mustNotExist: true, chunks: d.length ? [hashes[i]] : [], size: d.length }));
    await c.commitBatch(id, commits, 1000, [201]);
    const seconds = (performance.now() - t0) / 1000;
    return { ok: true, seconds, error: '', extra: { bytesSent: c.bytesSent, requests: c.requests, files: files.length } };
  } catch (e) {
    return fail((e as Error).message);
  }
}

/** `rclone copy SRC bench:DIR` against rclone serve webdav, the remote given by environment variables. */
export async function smallFilesRclone(server: Server, srcDir: string, dir: string, user: string, password: string, expected: number, timeoutMs: number): Promise<SyncResult> {
  const obscured = await run('rclone', ['obscure', password], { timeoutMs: 10_000 });
  if (obscured.code !== 0) return fail(`rclone obscure exited ${obscured.code}: ${obscured.stderr}`);
  const env = {
    ...process.env,
    RCLONE_CONFIG: '/dev/null',
    RCLONE_CONFIG_BENCH_TYPE: 'webdav',
    RCLONE_CONFIG_BENCH_URL: new URL(server.url('x')).origin + '/',
    RCLONE_CONFIG_BENCH_VENDOR: 'other',
    RCLONE_CONFIG_BENCH_USER: user,
    RCLONE_CONFIG_BENCH_PASS: obscured.stdout.trim(),
  };
  const r = await run('rclone', ['copy', srcDir, `bench:${dir}`], { timeoutMs, env });
  if (r.timedOut) return fail(`rclone copy timed out after ${timeoutMs / 1000} s`, r.seconds);
  if (r.code !== 0) return fail(`rclone copy exited ${r.code}: ${r.stderr.slice(-400)}`, r.seconds);
  // Count what arrived, untimed.
  const ls = await run('find', [`${server.dataDir}/${dir}`, '-type', 'f'], { timeoutMs: 30_000 });
  const n = ls.stdout.split('\n').filter(Boolean).length;
  if (n !== expected) return fail(`rclone copy: ${n} files arrived, expected ${expected}`, r.seconds);
  return { ok: true, seconds: r.seconds, error: '', extra: { files: n } };
}

// ---- push: SSE latency ------------------------------------------------------------

interface SseEvent {
  event: string;
  data: string;
  at: number;
}

/** Opens the event stream; events are pushed to `sink` with their arrival time. */
async function openStream(c: SyncClient, sink: (e: SseEvent) => void, signal: AbortSignal): Promise<{ done: Promise<void> }> {
  const res = await fetch(c.base + '/api/v1/changes/stream', { headers: { ...c.headers, accept: 'text/event-stream' }, signal });
  if (res.status !== 200 || !res.body) throw new Error(`GET /api/v1/changes/stream: HTTP ${res.status} ${(await res.text()).slice(0, 300)}`);
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  const done = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        const at = performance.now();
        buf += dec.decode(value, { stream: true });
        for (let end = buf.indexOf('\n\n'); end >= 0; end = buf.indexOf('\n\n')) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          let event = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) event = line.slice(6).trim();
            else if (line.startsWith('data:')) data.push(line.slice(5).trim());
          }
          if (data.length || event !== 'message') sink({ event, data: data.join('\n'), at });
        }
      }
    } catch {
      // aborted at the end of the row
    }
  })();
  return { done };
}

/**
 * One listener, one committer: `count` small files committed one at a time
 * (session, chunks, commit), each waiting for its `changed` event (≤ 5 s).
 */
export async function pushLatency(server: Server, count: number): Promise<SyncResult> {
  const listener = new SyncClient(server);
  const writer = new SyncClient(server);
  const ac = new AbortController();
  const events: SseEvent[] = [];
  let wake: (() => void) | null = null;
  let reading: Promise<void> | null = null;
  try {
    const folder = await writer.folder('push');
    reading = (await openStream(listener, (e) => {
      events.push(e);
      wake?.();
    }, ac.signal)).done;
    const waitFor = async (pred: (e: SseEvent) => boolean, ms: number): Promise<SseEvent | null> => {
      const deadline = performance.now() + ms;
      for (;;) {
        const hit = events.find(pred);
        if (hit) return hit;
        const left = deadline - performance.now();
        if (left <= 0) return null;
        await new Promise<void>((r) => {
          const t = setTimeout(r, left);
          wake = () => {
            clearTimeout(t);
            r();
          };
        });
        wake = null;
      }
    };
    const ready = await waitFor((e) => e.event === 'ready', 10_000);
    if (!ready) throw new Error('no "ready" event within 10 s');
    let position = Number((JSON.parse(ready.data) as { position: number }).position);
    const latencies: number[] = [];
    let early = 0;
    const t0 = performance.now();
    for (let i = 0; i < count; i++) {
      const body = randomBytes(1024);
      const hash = sha256hex(body);
      const id = await writer.session();
      await writer.putChunks(id, 1, () => ({ hash, bytes: body }), 1, MiB);
      await writer.commit(id, { parentId: folder.id, name: `p${String(i).padStart(4, '0')}`, mustNotExist: true, chunks: [hash], size: body.length }, [201]);
      const answered = performance.now();
      const prev = position;
      const ev = await waitFor((e) => e.event === 'changed' && Number((JSON.parse(e.data) as { position: number }).position) > prev, 5_000);
      if (!ev) throw new Error(`commit ${i + 1}: no "changed" event after position ${prev} within 5 s`);
      position = Number((JSON.parse(ev.data) as { position: number }).position);
      if (ev.at < answered) early++;
      latencies.push(Math.max(0, ev.at - answered));
      events.length = 0;
    }
    const seconds = (performance.now() - t0) / 1000;
    return { ok: true, seconds, error: '', latenciesMs: latencies, extra: { changes: count, eventBeforeResponse: early } };
  } catch (e) {
    return fail((e as Error).message);
  } finally {
    ac.abort();
    await reading;
  }
}

// ---- feed: make K changes, then read them all ---------------------------------------

/** Makes `count` changes: empty files created by commit-batch, 1000 a request. Returns the cursor before them. */
export async function makeChanges(server: Server, count: number): Promise<SyncResult & { cursor?: string }> {
  const c = new SyncClient(server);
  try {
    const folder = await c.folder('feed');
    const { cursor } = await c.drive();
    const t0 = performance.now();
    const id = await c.session();
    const files = Array.from({ length: count }, (_, i): FileCommit => ({ parentId: folder.id, name: `e${String(i).padStart(6, '0')}`, mustNotExist: true, chunks: [], size: 0 }));
    await c.commitBatch(id, files, 1000, [201]);
    return { ok: true, seconds: (performance.now() - t0) / 1000, error: '', cursor, extra: { changes: count, requests: c.requests } };
  } catch (e) {
    return fail((e as Error).message);
  }
}

/** Reads the feed from `cursor` until hasMore is false (limit=5000 pages); checks gapless positions and the count. */
export async function readFeed(server: Server, cursor: string, expected: number, timeoutMs: number): Promise<SyncResult> {
  const c = new SyncClient(server);
  try {
    const t0 = performance.now();
    let n = 0;
    let last = -1;
    for (let page = 0; page < 10_000; page++) {
      if (performance.now() - t0 > timeoutMs) throw new Error(`feed not read after ${timeoutMs / 1000} s (${n} changes)`);
      const r = await c.call<{ changes: { position: number }[]; cursor: string; hasMore: boolean }>('GET', `/api/v1/changes?cursor=${encodeURIComponent(cursor)}&limit=5000`, undefined, [200]);
      for (const ch of r.changes) {
        if (last >= 0 && ch.position !== last + 1) throw new Error(`feed gap: position ${ch.position} after ${last}`);
        last = ch.position;
      }
      n += r.changes.length;
      cursor = r.cursor;
      if (!r.hasMore) break;
    }
    const seconds = (performance.now() - t0) / 1000;
    if (n !== expected) return fail(`feed: read ${n} changes, expected ${expected}`, seconds);
    return { ok: true, seconds, error: '', extra: { changes: n, requests: c.requests } };
  } catch (e) {
    return fail((e as Error).message);
  }
}
