/**
 * The `client` rows: the real sync client, i.e. the `coffer` CLI of
 * packages/client (`bin/coffer login|sync|sync --watch|disconnect`), spawned
 * as a user would, each device with its own $COFFER_CLIENT_HOME and folder,
 * against a fresh Coffer server started by the bench (peers.ts); the peer is
 * the rclone client (`rclone copy|sync|copyto`) against `rclone serve webdav`.
 *
 * Every CLI run is preloaded with cli-timing.ts (NODE_OPTIONS=--import), which
 * writes when the first HTTP request went out and when the `exit` event fired:
 * the wall time is reported as start-up (wrapper, Node, modules, opening the
 * account) + engine + exit (Node's teardown after the exit event). Results are SyncResult (sync.ts) so run.ts's measure() records them.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { readAt, KiB, MiB } from './fixtures.ts';
import { USER, PASSWORD, type Server } from './peers.ts';
import { cpuSeconds } from './proc-stats.ts';
import { run, startOwned, type Owned, type RunResult } from './proc.ts';
import type { CountingProxy } from './tcp-proxy.ts';
import type { SyncResult } from './sync.ts';

const TIMING_PRELOAD = fileURLToPath(new URL('./cli-timing.ts', import.meta.url));

const fail = (error: string, seconds = NaN, extra?: Record<string, number>): SyncResult => ({ ok: false, seconds, error, ...(extra ? { extra } : {}) });

/** The CLI's wall time in three parts that add up to it. */
export interface CliTiming {
  /** Spawn → first HTTP request: the bin/coffer shell wrapper, Node start-up, module loading, opening the account. */
  startupSeconds: number;
  /** First HTTP request → the process's `exit` event: the engine (plus writing the report). */
  engineSeconds: number;
  /** `exit` event → the parent sees the process end: Node tearing down (joining its threads). */
  exitSeconds: number;
  requests: number;
}

export interface CliRun extends RunResult {
  /** stdout parsed as JSON (the commands' --json report), or null. */
  json: Record<string, unknown> | null;
  timing: CliTiming | null;
}

/** The figures every CLI row records beside its wall time. */
function timingExtra(t: CliTiming | null): Record<string, number> {
  return t ? { startupSeconds: t.startupSeconds, engineSeconds: t.engineSeconds, exitSeconds: t.exitSeconds, requests: t.requests } : {};
}

function brief(r: RunResult): string {
  const text = `${r.stderr.trim()} ${r.stdout.trim()}`.trim().replace(/\s+/g, ' ');
  return `exit ${r.code}${r.signal ? ` (${r.signal})` : ''}${r.timedOut ? ', timed out' : ''}: ${text.slice(0, 400)}`;
}

/** The server's origin (http://127.0.0.1:PORT) from its URL scheme. */
export function originOf(server: Server): string {
  return new URL(server.url('x')).origin;
}

/**
 * One device: a state directory ($COFFER_CLIENT_HOME) and a synced folder,
 * signed in to one account named after the device.
 */
export class Device {
  readonly repoRoot: string;
  readonly dir: string;
  readonly name: string;
  readonly home: string;
  readonly folder: string;
  private runs = 0;
  constructor(repoRoot: string, dir: string, name: string) {
    this.repoRoot = repoRoot;
    this.dir = dir;
    this.name = name;
    this.home = join(dir, 'home');
    this.folder = join(dir, 'Drive');
    mkdirSync(this.folder, { recursive: true });
  }

  private env(timingFile?: string): NodeJS.ProcessEnv {
    // COFFER_CREDENTIAL_STORE=file: the 0600 file in the state directory, never an OS keyring this machine may or may not offer
    // (a keyring probe at sign-in, and a keyring the disconnect check could not read).
    const env: NodeJS.ProcessEnv = { ...process.env, COFFER_CLIENT_HOME: this.home, COFFER_PASSWORD: PASSWORD, COFFER_CREDENTIAL_STORE: 'file' };
    delete env.NODE_OPTIONS;
    if (timingFile) Object.assign(env, { NODE_OPTIONS: `--import=${TIMING_PRELOAD}`, BENCH_CLI_TIMING: timingFile });
    return env;
  }

  /** `bin/coffer ARGS` (the launcher users run: project Node, UV_USE_IO_URING=1), timed by the preload. */
  async cli(args: readonly string[], timeoutMs: number): Promise<CliRun> {
    const timingFile = join(this.dir, `timing-${++this.runs}.json`);
    const spawnedAt = performance.timeOrigin + performance.now();
    const r = await run(join(this.repoRoot, 'bin/coffer'), args, { timeoutMs, env: this.env(timingFile), cwd: this.dir });
    let json: Record<string, unknown> | null = null;
    try {
      json = JSON.parse(r.stdout) as Record<string, unknown>;
    } catch {
      // not JSON (an error): the caller reports stdout/stderr
    }
    let timing: CliTiming | null = null;
    try {
      const t = JSON.parse(readFileSync(timingFile, 'utf8')) as { timeOrigin: number; firstRequestMs: number; exitMs: number; requests: number };
      const pre = (t.timeOrigin - spawnedAt) / 1000; // spawn → the child's time origin: shell wrapper, exec, Node's earliest bootstrap
      if (t.firstRequestMs >= 0) {
        timing = {
          startupSeconds: pre + t.firstRequestMs / 1000,
          engineSeconds: (t.exitMs - t.firstRequestMs) / 1000,
          exitSeconds: r.seconds - pre - t.exitMs / 1000,
          requests: t.requests,
        };
      }
    } catch {
      // no timing file: the row still has its wall time
    }
    rmSync(timingFile, { force: true });
    return { ...r, json, timing };
  }

  /** `coffer login ORIGIN --folder DIR` with the password from COFFER_PASSWORD (no browser). */
  async login(origin: string): Promise<void> {
    const r = await this.cli(['login', origin, '--folder', this.folder, '--username', USER, '--name', this.name, '--device-name', this.name, '--json'], 60_000);
    if (r.code !== 0) throw new Error(`coffer login (${this.name}): ${brief(r)}`);
  }

  get credentialsFile(): string {
    return join(this.home, 'accounts', this.name, 'credentials.json');
  }

  /** `coffer sync --watch` as a long-running process (output to `logFile`). */
  watch(logFile: string): Owned {
    return startOwned(join(this.repoRoot, 'bin/coffer'), ['sync', '--watch'], logFile, this.env());
  }
}

// ---- server-side checks (untimed) ---------------------------------------------

async function api<T>(server: Server, path: string): Promise<{ status: number; body: T }> {
  const res = await fetch(originOf(server) + path, { headers: server.authHeaders, signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // keep the text
  }
  return { status: res.status, body: body as T };
}

interface Item {
  id: string;
  name: string;
  kind: string;
  size: number;
}

/** Every child of the folder at `path` (from the drive root), following the pages. */
export async function listFolder(server: Server, path: string): Promise<Item[]> {
  const f = await api<Item>(server, `/api/v1/items/by-path?path=${encodeURIComponent(path)}`);
  if (f.status !== 200) throw new Error(`GET /api/v1/items/by-path?path=${path}: HTTP ${f.status} ${JSON.stringify(f.body).slice(0, 200)}`);
  const out: Item[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 1000; page++) {
    const q: string = `/api/v1/items/${encodeURIComponent(f.body.id)}/children?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const r = await api<{ items: Item[]; nextCursor: string | null }>(server, q);
    if (r.status !== 200) throw new Error(`GET ${q}: HTTP ${r.status}`);
    out.push(...r.body.items);
    cursor = r.body.nextCursor;
    if (!cursor) break;
  }
  return out;
}

/**
 * Checks that the server holds every file of `localDir` under `remoteDir`
 * with its size, and compares the content of `sample` of them byte for byte.
 * Returns null when all is there, else what is wrong.
 */
export async function checkOnServer(server: Server, localDir: string, remoteDir: string, sample = 3): Promise<string | null> {
  try {
    const local = readdirSync(localDir).sort();
    const items = new Map((await listFolder(server, remoteDir)).filter((i) => i.kind === 'file').map((i) => [i.name, i]));
    const missing = local.filter((n) => items.get(n)?.size !== statSync(join(localDir, n)).size);
    if (missing.length) return `${missing.length} of ${local.length} files of ${remoteDir}/ missing on the server or of the wrong size (first: ${missing[0]})`;
    if (items.size !== local.length) return `the server has ${items.size} files in ${remoteDir}/, the folder ${local.length}`;
    const picks = [...new Set([0, local.length >> 1, local.length - 1].slice(0, sample))].filter((i) => i >= 0 && i < local.length);
    for (const i of picks) {
      const res = await fetch(server.url(`${remoteDir}/${local[i]}`), { headers: server.authHeaders, signal: AbortSignal.timeout(30_000) });
      const body = Buffer.from(await res.arrayBuffer());
      if (res.status !== 200 || !body.equals(readFileSync(join(localDir, local[i])))) return `GET ${remoteDir}/${local[i]}: HTTP ${res.status}, content differs from the folder's`;
    }
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

/** Reads `coffer_http_received_bytes_total` from the server's /metrics (public). */
export async function metricsBytesIn(server: Server): Promise<number> {
  try {
    const res = await fetch(`${originOf(server)}/metrics`, { signal: AbortSignal.timeout(10_000) });
    const m = /^coffer_http_received_bytes_total\s+([\d.e+]+)/m.exec(await res.text());
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

// ---- Coffer rows ----------------------------------------------------------------

type Counts = { rounds?: number; uploaded?: number; downloaded?: number; moved?: number; deleted?: number; created?: number; conflicts?: unknown[]; problems?: unknown[]; skipped?: unknown[]; pendingLocal?: number };
const changes = (c: Counts) => (c.uploaded ?? 0) + (c.downloaded ?? 0) + (c.moved ?? 0) + (c.deleted ?? 0) + (c.created ?? 0);

/**
 * `coffer sync --json` that must move exactly `expect` files one way
 * (`uploaded` or `downloaded`), with nothing left pending and no problem.
 */
export async function cofferSync(dev: Device, expect: { uploaded?: number; downloaded?: number }, timeoutMs: number, proxy?: CountingProxy): Promise<SyncResult> {
  const up0 = proxy?.up() ?? 0;
  const r = await dev.cli(['sync', '--json'], timeoutMs);
  const extra: Record<string, number> = { ...timingExtra(r.timing), ...(proxy ? { bytesSent: proxy.up() - up0 } : {}) };
  if (r.code !== 0 || !r.json) return fail(`coffer sync: ${brief(r)}`, r.seconds, extra);
  const c = r.json as Counts;
  Object.assign(extra, { uploaded: c.uploaded ?? NaN, downloaded: c.downloaded ?? NaN, rounds: c.rounds ?? NaN });
  for (const [k, v] of Object.entries(expect)) {
    if (c[k as keyof Counts] !== v) return fail(`coffer sync: ${k} ${String(c[k as keyof Counts])}, expected ${v} (report: ${r.stdout.replace(/\s+/g, ' ').slice(0, 300)})`, r.seconds, extra);
  }
  if ((c.pendingLocal ?? 0) !== 0 || c.problems?.length || c.conflicts?.length || c.skipped?.length) {
    return fail(`coffer sync left work: ${r.stdout.replace(/\s+/g, ' ').slice(0, 400)}`, r.seconds, extra);
  }
  return { ok: true, seconds: r.seconds, error: '', extra };
}

/** `coffer sync --json` when nothing changed on either side: must report no step at all. */
export async function cofferNoop(dev: Device, timeoutMs: number): Promise<SyncResult> {
  const r = await dev.cli(['sync', '--json'], timeoutMs);
  const extra = timingExtra(r.timing);
  if (r.code !== 0 || !r.json) return fail(`coffer sync: ${brief(r)}`, r.seconds, extra);
  const c = r.json as Counts;
  if (changes(c) !== 0 || (c.pendingLocal ?? 0) !== 0 || c.problems?.length || c.conflicts?.length) return fail(`coffer sync did something with nothing changed: ${r.stdout.replace(/\s+/g, ' ').slice(0, 300)}`, r.seconds, extra);
  return { ok: true, seconds: r.seconds, error: '', extra: { ...extra, rounds: c.rounds ?? NaN } };
}

/** Writes 1 MiB of fresh random bytes into `file` at `at` (in place, same size). */
export function patchFile(file: string, at: number): Buffer {
  const patch = randomBytes(MiB);
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, patch, 0, patch.length, at);
  } finally {
    closeSync(fd);
  }
  return patch;
}

/** Where edit `k` of `edits` goes: the first in the middle, each next one further on (apart, so no edit re-finds another's chunks). */
export function editOffset(size: number, k: number, edits: number): number {
  const step = Math.min(64 * MiB, Math.floor(size / (2 * (edits + 1))));
  return Math.max(0, Math.floor((size / 2 + k * step - MiB / 2) / 4096) * 4096);
}

/**
 * `coffer sync` after a 1 MiB edit of the big file: exactly one upload; bytes
 * the client sent counted by the proxy in front of the server (headers, JSON
 * and chunk bodies), and what the server's own byte counter saw beside it.
 */
export async function cofferDelta(dev: Device, server: Server, proxy: CountingProxy, timeoutMs: number): Promise<SyncResult> {
  const m0 = await metricsBytesIn(server);
  const res = await cofferSync(dev, { uploaded: 1 }, timeoutMs, proxy);
  const m1 = await metricsBytesIn(server);
  return { ...res, extra: { ...res.extra, metricsBytesIn: m1 - m0 } };
}

/**
 * Two devices watching (`coffer sync --watch` each): a new small file written
 * in A's folder, the time until it is complete (right size and content) in
 * B's folder, `samples` times, `gapMs` apart. Both watchers are started here
 * and stopped with SIGINT (their normal stop) at the end.
 */
export async function watchLatency(a: Device, b: Device, samples: number, gapMs: number, logDir: string, tag: string): Promise<SyncResult & { watcherCpu?: number }> {
  const wa = a.watch(join(logDir, `watch-${a.name}.log`));
  const wb = b.watch(join(logDir, `watch-${b.name}.log`));
  const stopAll = async () => {
    for (const w of [wa, wb]) if (!w.hasExited()) process.kill(w.pid, 'SIGINT');
    await Promise.race([Promise.all([wa.exited, wb.exited]), sleep(15_000)]);
    await Promise.all([wa.stop(), wb.stop()]);
  };
  try {
    for (const w of [wa, wb]) {
      const deadline = Date.now() + 120_000;
      while (!/watching /.test(readFileSync(w.logFile, 'utf8'))) {
        if (w.hasExited()) return fail(`coffer sync --watch exited before watching: ${w.logTail()}`);
        if (Date.now() > deadline) return fail(`coffer sync --watch not watching after 120 s: ${w.logTail()}`);
        await sleep(50);
      }
    }
    await sleep(gapMs); // let the first runs' own echoes settle
    const cpu0 = cpuSeconds(wa.pid) + cpuSeconds(wb.pid);
    const latencies: number[] = [];
    const t0 = performance.now();
    for (let i = 1; i <= samples; i++) {
      const name = `watch-${tag}-${String(i).padStart(3, '0')}.bin`;
      const content = randomBytes(KiB);
      const target = join(b.folder, name);
      writeFileSync(join(a.folder, name), content);
      const start = performance.now();
      const deadline = start + 30_000;
      for (;;) {
        let size = -1;
        try {
          size = statSync(target).size;
        } catch {
          // not there yet
        }
        if (size === content.length && readFileSync(target).equals(content)) break;
        if (performance.now() > deadline) return fail(`sample ${i}: ${name} not complete in B's folder after 30 s (A: ${wa.logTail(3)} | B: ${wb.logTail(3)})`);
        if (wa.hasExited() || wb.hasExited()) return fail(`a watcher exited during sample ${i}: ${wa.hasExited() ? wa.logTail() : wb.logTail()}`);
        await sleep(5);
      }
      latencies.push(performance.now() - start);
      await sleep(gapMs);
    }
    const seconds = (performance.now() - t0) / 1000;
    const watcherCpu = cpuSeconds(wa.pid) + cpuSeconds(wb.pid) - cpu0;
    return { ok: true, seconds, error: '', latenciesMs: latencies, extra: { samples, watcherCpuSeconds: watcherCpu } };
  } finally {
    await stopAll();
  }
}

/**
 * `coffer disconnect --json` with `pending` new files expected to be finished
 * first. Checked afterwards: revoked on the server (the old access token is
 * refused), credentials and the account entry gone; the caller checks the
 * pending files on the server.
 */
export async function cofferDisconnect(dev: Device, server: Server, pending: number, timeoutMs: number): Promise<SyncResult> {
  let token = '';
  try {
    token = (JSON.parse(readFileSync(dev.credentialsFile, 'utf8')) as { accessToken?: string }).accessToken ?? '';
  } catch (e) {
    return fail(`no credentials before disconnect: ${(e as Error).message}`);
  }
  const r = await dev.cli(['disconnect', '--json'], timeoutMs);
  const extra = timingExtra(r.timing);
  if (r.code !== 0 || !r.json) return fail(`coffer disconnect: ${brief(r)}`, r.seconds, extra);
  const j = r.json as { pendingBefore?: { folder?: boolean }[]; leftBehind?: unknown[]; finished?: boolean; revoked?: string; stateCleared?: boolean };
  const pendingFiles = j.pendingBefore?.filter((p) => !p.folder).length ?? -1;
  Object.assign(extra, { pendingBefore: j.pendingBefore?.length ?? NaN, pendingFiles });
  if (j.revoked !== 'yes' || !j.finished || !j.stateCleared || j.leftBehind?.length) return fail(`coffer disconnect report: ${r.stdout.replace(/\s+/g, ' ').slice(0, 300)}`, r.seconds, extra);
  if (pendingFiles !== pending) return fail(`coffer disconnect found ${pendingFiles} pending files (${j.pendingBefore?.length} changes), expected ${pending} files`, r.seconds, extra);
  if (existsSync(dev.credentialsFile)) return fail(`credentials still at ${dev.credentialsFile} after disconnect`, r.seconds, extra);
  const accounts = (() => {
    try {
      return readFileSync(join(dev.home, 'accounts.json'), 'utf8');
    } catch {
      return '';
    }
  })();
  if (accounts.includes(`"${dev.name}"`)) return fail(`accounts.json still lists ${dev.name} after disconnect`, r.seconds, extra);
  const me = await fetch(`${originOf(server)}/api/v1/me`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) });
  await me.arrayBuffer();
  if (me.status !== 401) return fail(`the disconnected device's access token still works (GET /api/v1/me: HTTP ${me.status})`, r.seconds, extra);
  return { ok: true, seconds: r.seconds, error: '', extra };
}

// ---- rclone ---------------------------------------------------------------------

/** Environment for an rclone remote `bench:` (webdav, vendor other) at `origin`, no config file. */
export async function rcloneEnv(origin: string): Promise<NodeJS.ProcessEnv> {
  const obscured = await run('rclone', ['obscure', PASSWORD], { timeoutMs: 10_000 });
  if (obscured.code !== 0) throw new Error(`rclone obscure exited ${obscured.code}: ${obscured.stderr}`);
  return {
    ...process.env,
    RCLONE_CONFIG: '/dev/null',
    RCLONE_CONFIG_BENCH_TYPE: 'webdav',
    RCLONE_CONFIG_BENCH_URL: origin + '/',
    RCLONE_CONFIG_BENCH_VENDOR: 'other',
    RCLONE_CONFIG_BENCH_USER: USER,
    RCLONE_CONFIG_BENCH_PASS: obscured.stdout.trim(),
  };
}

/** `rclone sync SRC bench:DIR` with nothing changed: must transfer nothing. */
export async function rcloneNoop(env: NodeJS.ProcessEnv, srcDir: string, dir: string, timeoutMs: number): Promise<SyncResult> {
  const r = await run('rclone', ['sync', srcDir, `bench:${dir}`, '-v'], { timeoutMs, env });
  if (r.code !== 0) return fail(`rclone sync: ${brief(r)}`, r.seconds);
  if (!/There was nothing to transfer/.test(r.stderr)) return fail(`rclone sync transferred something with nothing changed: ${r.stderr.slice(-300)}`, r.seconds);
  const checks = /Checks:\s+(\d+)/.exec(r.stderr)?.[1];
  return { ok: true, seconds: r.seconds, error: '', extra: { checks: Number(checks ?? NaN) } };
}

/**
 * `rclone copyto FILE bench:NAME` (with --ignore-times for a changed file of
 * the same size: over WebDAV with vendor=other rclone compares sizes only and
 * would skip it). Bytes sent counted by the proxy the remote points at.
 */
export async function rcloneCopyTo(env: NodeJS.ProcessEnv, file: string, name: string, serverFile: string, proxy: CountingProxy, ignoreTimes: boolean, timeoutMs: number): Promise<SyncResult> {
  const up0 = proxy.up();
  const r = await run('rclone', ['copyto', file, `bench:${name}`, '-v', ...(ignoreTimes ? ['--ignore-times'] : [])], { timeoutMs, env });
  const extra = { bytesSent: proxy.up() - up0 };
  if (r.code !== 0) return fail(`rclone copyto: ${brief(r)}`, r.seconds, extra);
  if (!/Copied/.test(r.stderr)) return fail(`rclone copyto copied nothing: ${r.stderr.slice(-300)}`, r.seconds, extra);
  let size = -1;
  try {
    size = statSync(serverFile).size;
  } catch {
    // reported below
  }
  if (size !== statSync(file).size) return fail(`rclone copyto: the server's file is ${size} bytes, the source ${statSync(file).size}`, r.seconds, extra);
  return { ok: true, seconds: r.seconds, error: '', extra };
}

/** Compares `length` bytes at `at` of two local files (untimed check of rclone's copy). */
export function sameRange(a: string, b: string, at: number, length: number): boolean {
  return readAt(a, at, length).equals(readAt(b, at, length));
}
