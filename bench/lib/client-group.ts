/**
 * The `client` group (`--only client`): the real sync client (`coffer` CLI)
 * next to the rclone client, one run = four parts, each on fresh servers:
 *
 *  small   N × 4 KiB: first `coffer sync` vs `rclone copy`; then "nothing
 *          changed" (`coffer sync` vs `rclone sync`, `noopRepeats` samples);
 *          then `coffer disconnect` (nothing pending) and, on a second device
 *          holding the same N files, `coffer disconnect` with P new files.
 *          (With --client-big the nothing-pending disconnect runs on the
 *          100,000-file device instead, and the pending one on this one.)
 *  delta   one big file: first sync (Coffer vs `rclone copyto`, both through a
 *          counting proxy), then `edits` × 1 MiB overwritten and synced again:
 *          bytes the client sent and time.
 *  watch   two devices of one user, both `coffer sync --watch`: a new file in
 *          A's folder until it is complete in B's, `watchSamples` times.
 *  big     (--client-big) 100,000 × 4 KiB: first `coffer sync` (no peer:
 *          rclone would need ~54 min), nothing changed vs `rclone sync` (its
 *          server folder filled with cp: rclone keeps no client state), then
 *          the nothing-pending disconnect.
 */
import { cpSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeRandomFile, writeSmallFiles, GiB, KiB, MiB } from './fixtures.ts';
import { startCoffer, startRclone, USER, PASSWORD, type PeerName, type Server } from './peers.ts';
import type { RowDef, RowId } from './report.ts';
import { checkEdit, smallFilesRclone, type SyncResult } from './sync.ts';
import { startCountingProxy, type CountingProxy } from './tcp-proxy.ts';
import {
  Device, checkOnServer, cofferDelta, cofferDisconnect, cofferNoop, cofferSync, editOffset, originOf, patchFile, rcloneCopyTo, rcloneEnv, rcloneNoop, sameRange, watchLatency,
} from './client.ts';

export interface ClientOptions {
  /** N small files for the first sync and the nothing-changed rows. */
  files: number;
  /** Run the 100,000-file part. */
  big: boolean;
  bigFiles: number;
  /** The big file of the delta rows. */
  sizeBytes: number;
  edits: number;
  watchSamples: number;
  watchGapMs: number;
  pending: number;
  noopRepeats: number;
}

export interface ClientContext {
  repoRoot: string;
  tmp: string;
  opts: ClientOptions;
  peers: ReadonlySet<PeerName>;
  measure(row: RowId, server: Server, runNo: number, warm: readonly string[], work: () => Promise<SyncResult>): Promise<boolean>;
  /** Marks a row of `peer` failed in run `runNo` (logged). */
  fail(row: RowId, peer: PeerName, runNo: number, msg: string): void;
  log(msg: string): void;
  /** Leave the devices' folders and state in the temp folder (--keep). */
  keep: boolean;
}

const n = (x: number) => x.toLocaleString('en');
const sizeLabel = (b: number) => (b % GiB === 0 ? `${b / GiB} GiB` : `${Math.round(b / MiB)} MiB`);

export function clientRowDefs(o: ClientOptions): Partial<Record<RowId, RowDef>> {
  return {
    'client-first': { id: 'client-first', work: `client: first sync, ${n(o.files)} × 4 KiB up (coffer sync / rclone copy)`, amount: o.files, unit: 'files' },
    'client-noop': { id: 'client-noop', work: `client: nothing changed, ${n(o.files)} files (coffer sync / rclone sync)`, amount: o.files, unit: 'wall' },
    'client-down': { id: 'client-down', work: `client: first sync of a 2nd device, ${n(o.files)} × 4 KiB down`, amount: o.files, unit: 'files' },
    'client-first-big': { id: 'client-first-big', work: `client: first sync, ${n(o.bigFiles)} × 4 KiB up (coffer sync)`, amount: o.bigFiles, unit: 'files' },
    'client-noop-big': { id: 'client-noop-big', work: `client: nothing changed, ${n(o.bigFiles)} files (coffer sync / rclone sync)`, amount: o.bigFiles, unit: 'wall' },
    'client-first-1g': { id: 'client-first-1g', work: `client: first sync, one ${sizeLabel(o.sizeBytes)} file (coffer sync / rclone copyto, via proxy)`, amount: o.sizeBytes, unit: 'bytes' },
    'client-delta': { id: 'client-delta', work: `client: 1 MiB changed in a ${sizeLabel(o.sizeBytes)} file (coffer sync / rclone copyto --ignore-times)`, amount: o.sizeBytes, unit: 'sent' },
    'client-watch': { id: 'client-watch', work: `client: new file on A → complete on B, both coffer sync --watch, ${o.watchSamples} samples`, amount: o.watchSamples, unit: 'latency' },
    'client-disconnect': { id: 'client-disconnect', work: `client: coffer disconnect, ${n(o.big ? o.bigFiles : o.files)} files synced, nothing pending`, amount: 1, unit: 'wall' },
    'client-disconnect-pending': { id: 'client-disconnect-pending', work: `client: coffer disconnect, ${n(o.files)} files synced + ${n(o.pending)} new 4 KiB files pending`, amount: 1, unit: 'wall' },
  };
}

/** The server's database files (not its blobs): what a nothing-changed sync makes it read. */
function serverMeta(s: Server): string[] {
  try {
    return readdirSync(s.dataDir).filter((x) => x !== 'blobs').map((x) => join(s.dataDir, x));
  } catch {
    return [];
  }
}

const syncTimeout = (files: number) => Math.min(3_600_000, Math.max(180_000, files * 60));
const rcloneTimeout = (files: number) => Math.min(3_600_000, Math.max(120_000, files * 100)); // ~31 files/s expected: 10 files/s is the bound

/** Starts a server, or marks `rows` failed for this run and returns null. */
async function start(ctx: ClientContext, peer: 'coffer' | 'rclone', r: number, name: string, rows: readonly RowId[]): Promise<Server | null> {
  const dataDir = join(ctx.tmp, `client-r${r}`, `${peer}-${name}`);
  const logFile = join(ctx.tmp, `client-r${r}`, `${peer}-${name}.log`);
  try {
    return peer === 'coffer' ? await startCoffer(ctx.repoRoot, dataDir, logFile) : await startRclone(dataDir, logFile);
  } catch (e) {
    for (const row of rows) ctx.fail(row, peer, r, `start/setup: ${(e as Error).message}`);
    return null;
  }
}

async function stop(...servers: (Server | CountingProxy | null)[]): Promise<void> {
  for (const s of servers) {
    if (!s) continue;
    if ('stop' in s) await s.stop();
    else await s.close();
  }
}

/** One run of the client group. */
export async function runClientGroup(ctx: ClientContext, r: number): Promise<void> {
  const dir = join(ctx.tmp, `client-r${r}`);
  const parts: [string, () => Promise<void>][] = [
    ['small files', () => partSmall(ctx, r)],
    ['one big file', () => partDelta(ctx, r)],
    ['watch latency', () => partWatch(ctx, r)],
    ...(ctx.opts.big ? ([['100,000 files', () => partBig(ctx, r)]] as [string, () => Promise<void>][]) : []),
  ];
  for (const [what, part] of parts) {
    ctx.log(`client rows, run ${r}: ${what}`);
    try {
      await part();
    } catch (e) {
      ctx.log(`  client ${what}: unexpected error ${(e as Error).stack ?? e}`);
    }
  }
  if (!ctx.keep) rmSync(dir, { recursive: true, force: true });
}

// ---- small files: first sync, nothing changed, disconnect ----------------------------

async function partSmall(ctx: ClientContext, r: number): Promise<void> {
  const o = ctx.opts;
  const dir = join(ctx.tmp, `client-r${r}`);
  const cofferRows: RowId[] = ['client-first', 'client-noop', ...(o.big ? [] : (['client-down', 'client-disconnect'] as RowId[])), 'client-disconnect-pending'];
  const s = await start(ctx, 'coffer', r, 'small', cofferRows);
  const rc = ctx.peers.has('rclone') ? await start(ctx, 'rclone', r, 'small', ['client-first', 'client-noop']) : null;
  try {
    const x = new Device(ctx.repoRoot, join(dir, 'dev-x'), 'x');
    const src = join(x.folder, 'small');
    writeSmallFiles(src, 'small', o.files, 4 * KiB);
    let cofferDone = false;
    if (s) await x.login(originOf(s));
    const order: ('coffer' | 'rclone')[] = r % 2 === 1 ? ['coffer', 'rclone'] : ['rclone', 'coffer'];
    for (const peer of order) {
      if (peer === 'coffer' && s) {
        cofferDone = await ctx.measure('client-first', s, r, [x.folder], () => cofferSync(x, { uploaded: o.files }, syncTimeout(o.files)));
        if (cofferDone) {
          const bad = await checkOnServer(s, src, 'small');
          if (bad) {
            ctx.fail('client-first', 'coffer', r, `check: ${bad}`);
            cofferDone = false;
          }
        }
      }
      if (peer === 'rclone' && rc) await ctx.measure('client-first', rc, r, [src], () => smallFilesRclone(rc, src, 'small', USER, PASSWORD, o.files, rcloneTimeout(o.files)));
    }
    // Nothing changed: the first of these runs right after the first sync.
    const env = rc ? await rcloneEnv(originOf(rc)) : null;
    for (let k = 0; k < o.noopRepeats; k++) {
      if (s && cofferDone) await ctx.measure('client-noop', s, r, [x.folder, x.home, ...serverMeta(s)], () => cofferNoop(x, 300_000));
      if (rc && env) await ctx.measure('client-noop', rc, r, [src, rc.dataDir], () => rcloneNoop(env, src, 'small', 300_000));
    }
    if (!s) return;
    if (!cofferDone) {
      for (const row of cofferRows.slice(2)) ctx.fail(row, 'coffer', r, 'the first sync failed');
      return;
    }
    await stop(rc);
    // The device whose disconnect has files pending: with --client-big this one, else a second device that downloads the N files first.
    let pendingDev = x;
    if (!o.big) {
      const c = new Device(ctx.repoRoot, join(dir, 'dev-c'), 'c');
      await c.login(originOf(s));
      const ok = await ctx.measure('client-down', s, r, [s.dataDir], () => cofferSync(c, { downloaded: o.files }, syncTimeout(o.files)));
      let got = -1;
      try {
        got = readdirSync(join(c.folder, 'small')).length;
      } catch {
        // reported below
      }
      if (ok && got !== o.files) ctx.fail('client-down', 'coffer', r, `check: ${got} files in the second device's folder, expected ${o.files}`);
      await ctx.measure('client-disconnect', s, r, [x.folder, x.home, ...serverMeta(s)], () => cofferDisconnect(x, s, 0, 300_000));
      if (!ok) {
        ctx.fail('client-disconnect-pending', 'coffer', r, 'the second device\'s first sync failed');
        return;
      }
      pendingDev = c;
    }
    const pend = join(pendingDev.folder, 'pending');
    writeSmallFiles(pend, 'pending', o.pending, 4 * KiB);
    const ok = await ctx.measure('client-disconnect-pending', s, r, [pendingDev.folder, pendingDev.home, ...serverMeta(s)], () => cofferDisconnect(pendingDev, s, o.pending, 600_000));
    if (ok) {
      const bad = await checkOnServer(s, pend, 'pending');
      if (bad) ctx.fail('client-disconnect-pending', 'coffer', r, `check: ${bad}`);
    }
  } finally {
    await stop(s, rc);
  }
}

// ---- one big file: first sync and 1 MiB changes ----------------------------------------

async function partDelta(ctx: ClientContext, r: number): Promise<void> {
  const o = ctx.opts;
  const dir = join(ctx.tmp, `client-r${r}`);
  const rows: RowId[] = ['client-first-1g', 'client-delta'];
  const s = await start(ctx, 'coffer', r, 'delta', rows);
  const rc = ctx.peers.has('rclone') ? await start(ctx, 'rclone', r, 'delta', rows) : null;
  let ps: CountingProxy | null = null;
  let pr: CountingProxy | null = null;
  try {
    const d = new Device(ctx.repoRoot, join(dir, 'dev-d'), 'd');
    const file = join(d.folder, 'big.bin');
    writeRandomFile(file, o.sizeBytes);
    let cofferOk = false;
    let rcloneOk = false;
    let env: NodeJS.ProcessEnv | null = null;
    if (s) {
      ps = await startCountingProxy(Number(new URL(originOf(s)).port));
      await d.login(`http://127.0.0.1:${ps.port}`);
    }
    if (rc) {
      pr = await startCountingProxy(Number(new URL(originOf(rc)).port));
      env = await rcloneEnv(`http://127.0.0.1:${pr.port}`);
    }
    const order: ('coffer' | 'rclone')[] = r % 2 === 1 ? ['coffer', 'rclone'] : ['rclone', 'coffer'];
    for (const peer of order) {
      if (peer === 'coffer' && s && ps) {
        const p = ps;
        cofferOk = await ctx.measure('client-first-1g', s, r, [file], () => cofferSync(d, { uploaded: 1 }, 900_000, p));
      }
      if (peer === 'rclone' && rc && pr && env) {
        const p = pr;
        const e = env;
        rcloneOk = await ctx.measure('client-first-1g', rc, r, [file], () => rcloneCopyTo(e, file, 'big.bin', join(rc.dataDir, 'big.bin'), p, false, 900_000));
      }
    }
    if (s && !cofferOk) ctx.fail('client-delta', 'coffer', r, 'the first sync failed');
    if (rc && !rcloneOk) ctx.fail('client-delta', 'rclone', r, 'the first copy failed');
    for (let k = 0; k < o.edits && (cofferOk || rcloneOk); k++) {
      const at = editOffset(o.sizeBytes, k, o.edits);
      const patch = patchFile(file, at);
      for (const peer of k % 2 === r % 2 ? order : [...order].reverse()) {
        if (peer === 'coffer' && cofferOk && s && ps) {
          const p = ps;
          cofferOk = await ctx.measure('client-delta', s, r, [file, d.home], () => cofferDelta(d, s, p, 900_000));
          const bad = cofferOk ? await checkEdit(s, 'big.bin', at, patch) : null;
          if (bad) {
            ctx.fail('client-delta', 'coffer', r, `check: ${bad}`);
            cofferOk = false;
          }
        }
        if (peer === 'rclone' && rcloneOk && rc && pr && env) {
          const p = pr;
          const e = env;
          rcloneOk = await ctx.measure('client-delta', rc, r, [file], () => rcloneCopyTo(e, file, 'big.bin', join(rc.dataDir, 'big.bin'), p, true, 900_000));
          if (rcloneOk && !sameRange(file, join(rc.dataDir, 'big.bin'), at, MiB)) {
            ctx.fail('client-delta', 'rclone', r, `check: the server's file differs from the source at ${at}`);
            rcloneOk = false;
          }
        }
      }
    }
  } finally {
    await stop(ps, pr, s, rc);
  }
}

// ---- watch: change on A → complete on B --------------------------------------------------

async function partWatch(ctx: ClientContext, r: number): Promise<void> {
  const o = ctx.opts;
  const dir = join(ctx.tmp, `client-r${r}`);
  const s = await start(ctx, 'coffer', r, 'watch', ['client-watch']);
  if (!s) return;
  try {
    const a = new Device(ctx.repoRoot, join(dir, 'dev-a'), 'a');
    const b = new Device(ctx.repoRoot, join(dir, 'dev-b'), 'b');
    await a.login(originOf(s));
    await b.login(originOf(s));
    await ctx.measure('client-watch', s, r, [], () => watchLatency(a, b, o.watchSamples, o.watchGapMs, dir, `r${r}`));
  } finally {
    await stop(s);
  }
}

// ---- 100,000 files --------------------------------------------------------------------

async function partBig(ctx: ClientContext, r: number): Promise<void> {
  const o = ctx.opts;
  const dir = join(ctx.tmp, `client-r${r}`);
  const s = await start(ctx, 'coffer', r, 'big', ['client-first-big', 'client-noop-big', 'client-disconnect']);
  const rc = ctx.peers.has('rclone') ? await start(ctx, 'rclone', r, 'big', ['client-noop-big']) : null;
  try {
    const big = new Device(ctx.repoRoot, join(dir, 'dev-big'), 'big');
    const src = join(big.folder, 'small');
    ctx.log(`  writing ${n(o.bigFiles)} × 4 KiB`);
    writeSmallFiles(src, 'small', o.bigFiles, 4 * KiB);
    let ok = false;
    if (s) {
      await big.login(originOf(s));
      ok = await ctx.measure('client-first-big', s, r, [big.folder], () => cofferSync(big, { uploaded: o.bigFiles }, syncTimeout(o.bigFiles)));
      const bad = ok ? await checkOnServer(s, src, 'small') : null;
      if (bad) {
        ctx.fail('client-first-big', 'coffer', r, `check: ${bad}`);
        ok = false;
      }
      if (!ok) for (const row of ['client-noop-big', 'client-disconnect'] as const) ctx.fail(row, 'coffer', r, 'the first sync failed');
    }
    let env: NodeJS.ProcessEnv | null = null;
    if (rc) {
      // rclone keeps no client state and compares sizes only (vendor=other): a copy of the files in its served folder is exactly what `rclone copy` leaves.
      cpSync(src, join(rc.dataDir, 'small'), { recursive: true });
      const copied = readdirSync(join(rc.dataDir, 'small')).length;
      if (copied !== o.bigFiles) ctx.fail('client-noop-big', 'rclone', r, `setup: ${copied} files copied into rclone's folder`);
      else env = await rcloneEnv(originOf(rc));
    }
    for (let k = 0; k < o.noopRepeats; k++) {
      // Every row warms what it walks, as the 10,000-file rows do (the folder, and rclone's served copy): see page-cache.ts.
      if (s && ok) await ctx.measure('client-noop-big', s, r, [big.folder, big.home, ...serverMeta(s)], () => cofferNoop(big, 300_000));
      if (rc && env) {
        const e = env;
        await ctx.measure('client-noop-big', rc, r, [src, rc.dataDir], () => rcloneNoop(e, src, 'small', 600_000));
      }
    }
    await stop(rc);
    if (s && ok) await ctx.measure('client-disconnect', s, r, [big.folder, big.home, ...serverMeta(s)], () => cofferDisconnect(big, s, 0, 600_000));
  } finally {
    await stop(s, rc);
  }
}

/** Lines for the report's notes about the client rows. */
export function clientNotes(o: ClientOptions, extra: (row: RowId, key: string) => number): string[] {
  const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '–');
  return [
    `Client rows: the real sync client, \`bin/coffer login|sync|sync --watch|disconnect\` (packages/client), spawned like a user would, one $COFFER_CLIENT_HOME and folder per device, signed in with --password (COFFER_PASSWORD), credentials in the 0600 file (COFFER_CREDENTIAL_STORE=file). Time = wall time of the CLI process (Node start included); "client CPU s" = the CLI processes (reaped children) and the bench process. Each part starts fresh servers.`,
    `start-up + engine + exit = the CLI's wall time: a preload (NODE_OPTIONS=--import bench/lib/cli-timing.ts) notes when the CLI's first HTTP request goes out (undici diagnostics channel) and when its \`exit\` event fires. start-up = spawn → first request (bin/coffer's shell wrapper, Node, loading ~500 modules from .ts source, opening the account's SQLite index and credentials; ${f2(extra('client-noop', 'startupSeconds'))} s median on the nothing-changed row); engine = first request → exit event; exit = exit event → the process is gone (${f2(extra('client-noop', 'exitSeconds'))} s there: Node joining its threads at teardown). The CLI's --json report has no timings of its own.`,
    `First sync: N files in a subfolder of a fresh folder, one \`coffer sync --json\` (must report uploaded = N, nothing pending); then the server's listing must hold every file at its size and 3 contents are compared. rclone: \`rclone copy SRC bench:small\` (Debian rclone 1.60, remote from RCLONE_CONFIG_BENCH_* env vars, vendor=other), then the files counted in its folder. That client paces itself to ~31 files/s up whatever the server (BENCHMARKS.md).`,
    `Nothing changed: ${o.noopRepeats} samples per run, the first right after the first sync (it also reads back the change feed of the device's own uploads); Coffer must report no step, rclone "There was nothing to transfer" (rclone with vendor=other compares sizes only: a listing). ${o.big ? `${n(o.bigFiles)} files: Coffer's state is its own first sync (its row), rclone's folder filled with cp (rclone keeps no client state).` : 'The 100,000-file rows need --client-big.'}`,
    `1 MiB changed: ${o.edits} edit(s) per run of 1 MiB fresh random bytes written in place (the first in the middle of the file, each next one further on), each followed by \`coffer sync\` (must upload 1 file; the patched range read back by Range GET) and by \`rclone copyto --ignore-times\`. Bytes sent = client → server bytes through a counting TCP relay in the bench process (HTTP headers and framing included), the same for both clients; both first syncs of the big file went through it too. Coffer's own /metrics counter coffer_http_received_bytes_total saw ${f2(extra('client-delta', 'metricsBytesIn') / MiB)} MiB of a ${f2(extra('client-delta', 'bytesSent') / MiB)} MiB sync (median; it counts bodies after the request headers, the relay counts headers too).`,
    `Watch: two devices of one user (A, B), each \`coffer sync --watch\`; a new 1 KiB file written in A's folder, latency = until B's folder has it complete (size and content; polled every 5 ms), ${o.watchSamples} samples ${o.watchGapMs} ms apart. The client debounces folder and push events by 400 ms on each side. The two watchers used ${f2(extra('client-watch', 'watcherCpuSeconds'))} CPU s over a run. No peer: rclone has no watch mode.`,
    `Disconnect: \`coffer disconnect --json\`; checked afterwards: report revoked = yes, finished, state cleared, pending files as expected; credentials file and account entry gone; the device's old access token gets 401; with pending files, every one of them is on the server at its size (3 contents compared). Its first request is the revoke, after it has scanned the folder for pending changes: its "start-up" includes that scan. ${o.big ? 'Nothing pending: the 100,000-file device; pending: the N-file device plus the new files.' : 'Nothing pending: the first device (N files); pending: a second device that first downloaded the N files (its own row), plus the new files.'} No peer.`,
  ];
}
