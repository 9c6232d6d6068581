/**
 * `npm run bench`: Coffer's server next to peer programs, in the same run, on
 * the same files, with the same client (curl). Never part of the test suite.
 *
 *   node bench/run.ts [--runs N] [--big | --no-big] [--peers coffer,rclone,nginx]
 *                     [--files N] [--size-mib N] [--keep]
 *                     [--only transfer|sync|client] [--sync-files N] [--feed-changes N] [--push-changes N]
 *                     [--delta-edits N] [--client-files N] [--client-big] [--client-big-files N]
 *                     [--client-size-mib N] [--client-watch-samples N] [--client-pending N]
 *
 * Rows (each the median of N runs, each run on a fresh server and data folder):
 *   1 GiB PUT / GET, 10,000 × 4 KiB PUT / GET with curl --parallel-max 4:
 *     coffer (REST API) and rclone serve webdav; the 1 GiB GET also from nginx.
 *   5 GiB PUT to Coffer: server memory growth (VmHWM − RSS before). On by default
 *     when this run's 1 GiB PUT predicts under a minute for 5 GiB; --big or
 *     BENCH_5G=1 forces it on, --no-big or BENCH_5G=0 off.
 *   Sync protocol (bench/lib/sync.ts; --only sync runs just these): re-commit of
 *     the 1 GiB file after a 1 MiB change (bytes sent, time), N small files via
 *     session/missing/chunks/commit-batch vs `rclone copy` to rclone serve
 *     webdav, push latency (SSE), change-feed catch-up after K changes.
 *   Sync client (bench/lib/client.ts, client-group.ts; --only client, not in the
 *     default run): the `coffer` CLI's first sync, nothing-changed sync, 1 MiB
 *     change in a big file, watch latency between two devices and disconnect,
 *     beside rclone copy / sync / copyto where rclone has an equivalent.
 * See bench/README.md for what is measured and the traps.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, cpus, totalmem, release, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { fetchRange, runCurl, writeCurlConfig, type Transfer, type TransferResult } from './lib/curl.ts';
import { GiB, KiB, MiB, readAt, uploadGenerated, writeRandomFile, writeSmallFiles } from './lib/fixtures.ts';
import { COFFER_CLI, PASSWORD, USER, startCoffer, startNginx, startRclone, type PeerName, type Server } from './lib/peers.ts';
import { killAllOwned, run, syncDisks } from './lib/proc.ts';
import { beginCost, machineBusy } from './lib/proc-stats.ts';
import { warmPageCache } from './lib/page-cache.ts';
import { judgeTargets, median, noisyRows, renderText, summarise, writeReport, SYNC_ROWS, type Cell, type Report, type RowDef, type RowId } from './lib/report.ts';
import { clientNotes, clientRowDefs, runClientGroup, type ClientOptions } from './lib/client-group.ts';
import { SyncClient, checkEdit, deltaFirst, deltaSecond, makeEdit, makeChanges, pushLatency, readFeed, smallFilesCoffer, smallFilesRclone, type SyncResult } from './lib/sync.ts';
import { ensureTools } from './lib/tools.ts';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const MEM_LIMIT_MIB = 50;
const WATCHDOG_MS = 45 * 60_000;

// ---- options ----------------------------------------------------------------

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '2' },
    big: { type: 'boolean' },
    'no-big': { type: 'boolean' },
    peers: { type: 'string', default: 'coffer,rclone,nginx' },
    files: { type: 'string', default: '10000' },
    'size-mib': { type: 'string', default: '1024' },
    keep: { type: 'boolean', default: false },
    only: { type: 'string', default: 'transfer,sync' },
    'sync-files': { type: 'string', default: '2000' },
    'feed-changes': { type: 'string', default: '100000' },
    'push-changes': { type: 'string', default: '50' },
    'delta-edits': { type: 'string', default: '3' },
    'client-files': { type: 'string', default: '10000' },
    'client-big': { type: 'boolean', default: false },
    'client-big-files': { type: 'string', default: '100000' },
    'client-size-mib': { type: 'string', default: '1024' },
    'client-watch-samples': { type: 'string', default: '20' },
    'client-pending': { type: 'string', default: '1000' },
  },
});
/** Row groups to run: transfer (curl PUT/GET, 5 GiB memory), sync (the chunk protocol, push, feed) and client (the `coffer` CLI; only when asked). */
const GROUPS = ['transfer', 'sync', 'client'];
const groups = new Set(args.only!.split(',').map((g) => g.trim()).filter((g) => GROUPS.includes(g)));
if (groups.size === 0) throw new Error(`--only: expected transfer, sync, client or a comma-separated list, got "${args.only}"`);
const syncFiles = Math.max(1, Math.min(100_000, Number(args['sync-files']) || 2000));
const feedChanges = Math.max(1, Math.min(1_000_000, Number(args['feed-changes']) || 100_000));
const pushChanges = Math.max(1, Math.min(1000, Number(args['push-changes']) || 50));
const deltaEdits = Math.max(1, Math.min(20, Number(args['delta-edits']) || 3));
const runs = Math.max(1, Math.min(20, Number(args.runs) || 2));
const fileCount = Math.max(1, Math.min(100_000, Number(args.files) || 10_000));
const bigSize = Math.max(1, Math.min(16 * 1024, Number(args['size-mib']) || 1024)) * MiB;
const hugeSize = 5 * bigSize; // 5 GiB by default
const env5g = process.env.BENCH_5G;
/** The 5 GiB row: forced on, forced off, or decided from the 1 GiB PUT time ('auto'). */
const big: 'on' | 'off' | 'auto' = args['no-big']
  ? 'off'
  : args.big
    ? 'on'
    : env5g !== undefined && env5g !== ''
      ? ['0', 'false', 'no', 'off'].includes(env5g.toLowerCase())
        ? 'off'
        : 'on'
      : 'auto';
const AUTO_BIG_LIMIT_S = 60;
const peers = new Set(args.peers!.split(',').map((p) => p.trim()) as PeerName[]);
const clientOpts: ClientOptions = {
  files: Math.max(1, Math.min(100_000, Number(args['client-files']) || 10_000)),
  big: !!args['client-big'],
  bigFiles: Math.max(1, Math.min(200_000, Number(args['client-big-files']) || 100_000)),
  sizeBytes: Math.max(8, Math.min(16 * 1024, Number(args['client-size-mib']) || 1024)) * MiB,
  edits: deltaEdits,
  watchSamples: Math.max(1, Math.min(500, Number(args['client-watch-samples']) || 20)),
  watchGapMs: 1000,
  pending: Math.max(1, Math.min(100_000, Number(args['client-pending']) || 1000)),
  noopRepeats: 3,
};

const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const sizeLabel = (n: number) => (n % GiB === 0 ? `${n / GiB} GiB` : `${Math.round(n / MiB)} MiB`);

const ROWS: Record<RowId, RowDef> = {
  'put-1g': { id: 'put-1g', work: `${sizeLabel(bigSize)} PUT`, amount: bigSize, unit: 'bytes' },
  'get-1g': { id: 'get-1g', work: `${sizeLabel(bigSize)} GET`, amount: bigSize, unit: 'bytes' },
  'put-small': { id: 'put-small', work: `${fileCount.toLocaleString('en')} × 4 KiB PUT, 4 parallel`, amount: fileCount, unit: 'files' },
  'get-small': { id: 'get-small', work: `${fileCount.toLocaleString('en')} × 4 KiB GET, 4 parallel`, amount: fileCount, unit: 'files' },
  'mem-5g': { id: 'mem-5g', work: `${sizeLabel(hugeSize)} PUT: memory growth`, amount: hugeSize, unit: 'bytes' },
  'sync-first': { id: 'sync-first', work: `sync: ${sizeLabel(bigSize)} first upload (cut+hash+chunks+commit)`, amount: bigSize, unit: 'bytes' },
  'sync-delta': { id: 'sync-delta', work: `sync: ${sizeLabel(bigSize)} re-commit after 1 MiB changed`, amount: bigSize, unit: 'sent' },
  'sync-small': { id: 'sync-small', work: `sync: ${syncFiles.toLocaleString('en')} × 4 KiB upload (Coffer chunk protocol / rclone copy)`, amount: syncFiles, unit: 'files' },
  push: { id: 'push', work: `sync: push latency, ${pushChanges} commits one at a time`, amount: pushChanges, unit: 'latency' },
  'feed-write': { id: 'feed-write', work: `sync: make ${feedChanges.toLocaleString('en')} changes (commit-batch of empty files)`, amount: feedChanges, unit: 'changes' },
  'feed-read': { id: 'feed-read', work: `sync: feed catch-up, ${feedChanges.toLocaleString('en')} changes, limit=5000`, amount: feedChanges, unit: 'changes' },
  ...(clientRowDefs(clientOpts) as Record<string, RowDef>),
} as Record<RowId, RowDef>;

// ---- cells: one per (row, server), filled run by run ---------------------------

const cells: Cell[] = [];
function cell(row: RowId, peer: PeerName): Cell {
  let c = cells.find((x) => x.row.id === row && x.peer === peer);
  if (!c) cells.push((c = { row: ROWS[row], peer, samples: [], failures: [] }));
  return c;
}

/**
 * Times one row on `server`: read `warm` into the page cache (the client's
 * sources for an upload, the server's data folder for a download), sync, start
 * the server's CPU/RSS counters, run, record. Only `work` is timed.
 */
async function measure(row: RowId, server: Server, runNo: number, warm: readonly string[], work: () => Promise<TransferResult | SyncResult>): Promise<boolean> {
  const c = cell(row, server.name);
  warmPageCache(warm);
  syncDisks();
  const end = beginCost(server.pid);
  let result: TransferResult | SyncResult;
  try {
    result = await work();
  } catch (e) {
    result = { ok: false, seconds: NaN, error: (e as Error).message, statuses: {} };
  }
  const cost = end();
  if (result.ok) {
    const extra = 'extra' in result ? result.extra : undefined;
    const latenciesMs = 'latenciesMs' in result ? result.latenciesMs : undefined;
    c.samples.push({ seconds: result.seconds, ...cost, ...(extra ? { extra } : {}), ...(latenciesMs ? { latenciesMs } : {}) });
    const more = extra ? ` (${Object.entries(extra).map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(3)}`).join(', ')})` : '';
    log(`  ${server.name.padEnd(6)} ${ROWS[row].work}: ${result.seconds.toFixed(2)} s, server CPU ${cost.cpuSeconds.toFixed(2)} s, peak RSS ${cost.peakRssMiB.toFixed(0)} MiB${more}`);
  } else {
    c.failures.push(`run ${runNo}: ${result.error}`);
    log(`  ${server.name.padEnd(6)} ${ROWS[row].work}: FAILED ${result.error}`);
  }
  return result.ok;
}

/**
 * Untimed, before the big GET row, for every server alike: the first 16 MiB of the file once. Each run
 * starts a fresh server, and Coffer's first download runs its read loop before V8 has compiled it
 * (measured: 0.78–0.87 s for the first 1 GiB GET, 0.48–0.57 s for the next); a long-running server
 * is warm. nginx and rclone (compiled ahead of time) are given the same request.
 */
async function warmUpGet(server: Server): Promise<void> {
  const got = await fetchRange(server, 'big.bin', 0, Math.min(16 << 20, bigSize));
  if (got.length !== Math.min(16 << 20, bigSize)) throw new Error(`warm-up GET of big.bin: ${got.length} bytes`);
}

/** Untimed content check: a few ranges of the big file and one small file, byte for byte. */
async function verifyContent(server: Server, bigFile: string, small: Transfer | null): Promise<string | null> {
  try {
    for (const off of [0, Math.floor(bigSize / 2) - 7, bigSize - 4096]) {
      const got = await fetchRange(server, 'big.bin', off, 4096);
      if (!got.equals(readAt(bigFile, off, 4096))) return `content of big.bin at ${off} differs from the source`;
    }
    if (small) {
      const res = await fetch(server.url(small.path), { headers: server.authHeaders, signal: AbortSignal.timeout(10_000) });
      const body = Buffer.from(await res.arrayBuffer());
      if (res.status !== 200 || !body.equals(readFileSync(small.file!))) return `GET ${small.path}: HTTP ${res.status}, ${body.length} bytes, content ${body.equals(readFileSync(small.file!)) ? 'matches' : 'differs'}`;
    }
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

// ---- the run ------------------------------------------------------------------

let tmp = '';
let smallDir = '';
function cleanup(): void {
  killAllOwned();
  if (tmp && !args.keep) rmSync(tmp, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    log(`${sig}: stopping servers and removing ${tmp}`);
    cleanup();
    process.exit(130);
  });
}
process.once('uncaughtException', (e) => {
  log(`unexpected error: ${e.stack ?? e}`);
  cleanup();
  process.exit(1);
});
/** The client group adds its own allowance: ~15 min a run at its default sizes, plus an hour a run for the 100,000-file part. */
const watchdogMs = WATCHDOG_MS + (groups.has('client') ? runs * (20 + (clientOpts.big ? 60 : 0)) * 60_000 : 0);
const watchdog = setTimeout(() => {
  log(`watchdog: still running after ${watchdogMs / 60_000} min, giving up`);
  cleanup();
  process.exit(2);
}, watchdogMs);
watchdog.unref();

async function versionOf(cmd: string, argv: string[]): Promise<string> {
  try {
    const r = await run(cmd, argv, { timeoutMs: 10_000 });
    return (r.stdout + r.stderr).trim().split('\n')[0];
  } catch {
    return 'unknown';
  }
}

/** Whether Coffer fsyncs before acknowledging: its `fsync` option's default, else whether the disk blob store calls sync(). */
async function cofferFsync(): Promise<string> {
  try {
    const mod = (await import(join(repoRoot, 'packages/server/src/config/options.ts'))) as { OPTIONS: { key: string; default: unknown }[] };
    const o = mod.OPTIONS.find((x) => x.key === 'fsync');
    if (o) return `option fsync, default ${String(o.default)}`;
    const store = readFileSync(join(repoRoot, 'packages/server/src/blobstore/local.blob-store.ts'), 'utf8');
    return /\.(sync|datasync)\(\)/.test(store) ? 'yes, always (local.blob-store.ts syncs each blob, or pack of chunks, before rename)' : 'no sync() found in local.blob-store.ts';
  } catch {
    return 'unknown';
  }
}

const BUSY_LIMIT = 0.15;
const pct = (x: number) => `${(x * 100).toFixed(0)}%`;
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');

async function main(): Promise<void> {
  const t0 = Date.now();
  const loadAtStart = load();
  const busyAtStart = await machineBusy();
  await ensureTools(log);
  if (peers.has('coffer') && !existsSync(join(repoRoot, COFFER_CLI))) {
    log(`${COFFER_CLI} does not exist yet: Coffer rows are skipped`);
    peers.delete('coffer');
  }
  tmp = mkdtempSync(join(tmpdir(), 'coffer-bench-'));
  log(`temp folder ${tmp}; ${runs} run(s); ${sizeLabel(hugeSize)} row ${peers.has('coffer') ? big : 'off'}`);

  const src = join(tmp, 'src');
  const bigFile = join(src, 'big.bin');
  smallDir = join(tmp, 'small-src');
  mkdirSync(src, { recursive: true });
  if (groups.has('transfer') || groups.has('sync')) {
    log(`writing ${sizeLabel(bigSize)}${groups.has('transfer') ? ` and ${fileCount} × 4 KiB` : ''}${groups.has('sync') ? ` and ${syncFiles} × 4 KiB (sync)` : ''} random source files`);
    writeRandomFile(bigFile, bigSize);
  }
  if (groups.has('transfer')) await runTransfer(bigFile, src);
  if (groups.has('sync')) {
    const syncDir = join(tmp, 'sync-src');
    const syncT = writeSmallFiles(syncDir, 'sync', syncFiles, 4 * KiB);
    for (let r = 1; r <= runs; r++) {
      log(`sync rows: run ${r} of ${runs}`);
      const order = (['coffer', 'rclone'] as const).filter((p) => peers.has(p));
      if (r % 2 === 0) order.reverse();
      for (const peer of order) await runSync(peer, r, bigFile, syncDir, syncT);
    }
  }
  if (groups.has('client')) {
    if (!peers.has('coffer')) log('client rows skipped: coffer is not among --peers');
    else
      for (let r = 1; r <= runs; r++)
        await runClientGroup(
          {
            repoRoot,
            tmp,
            opts: clientOpts,
            peers,
            measure,
            fail: (row, peer, runNo, msg) => {
              log(`  ${peer} ${ROWS[row].work}: FAILED ${msg}`);
              cell(row, peer).failures.push(`run ${runNo}: ${msg}`);
            },
            log,
            keep: !!args.keep,
          },
          r,
        );
  }

  const busyAtEnd = await machineBusy();
  const sums = summarise(cells);
  const report: Report = {
    date: new Date().toISOString(),
    environment: {
      machine: `${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), ${(totalmem() / GiB).toFixed(0)} GiB RAM, Linux ${release()}`,
      node: process.version,
      curl: (await versionOf('curl', ['--version'])).split(' ').slice(0, 2).join(' '),
      rclone: await versionOf('rclone', ['version']),
      nginx: await versionOf('nginx', ['-v']),
      'coffer fsyncs before acknowledging': await cofferFsync(),
      'other CPU use before / after the bench (1 s sample)': `${pct(busyAtStart)} / ${pct(busyAtEnd)}`,
      'load average (1, 5, 15 min) at start / end': `${loadAtStart} / ${load()}`,
      [`${sizeLabel(hugeSize)} row`]: bigDecision || 'not run',
      'wall time of this bench': `${((Date.now() - t0) / 1000).toFixed(0)} s`,
    },
    options: { runs, big, bigDecision, peers: [...peers], files: fileCount, bigSize, hugeSize, only: [...groups], syncFiles, feedChanges, pushChanges, deltaEdits, ...(groups.has('client') ? { client: clientOpts } : {}) },
    notes: [
      `Times are medians of ${runs} run(s) of the client's wall time (curl for the PUT/GET rows, the bench's own Node client for the sync rows); each run starts a fresh server and data folder. Client and server share the machine's CPUs.`,
      'Coffer time ÷ this: below 1 means Coffer was faster than that server on the row.',
      'server CPU s = utime+stime delta of the server process (and its children) over the row; peak RSS = VmHWM, reset per row via /proc/PID/clear_refs (* = since process start); RSS growth = peak − RSS when the row started.',
      'Before every timed row the files it reads (the sources of an upload, the server\'s data folder for a download) are read once, untimed, into the page cache: this machine pages out page cache untouched for ~60 s (DAMON).',
      'Before the big GET row every server (each run starts fresh ones) is sent one untimed GET of the file\'s first 16 MiB, so the row measures a warm server: Coffer\'s first download otherwise runs before V8 has compiled its read loop.',
      '`sync` runs before every timed row. Uploads land in the page cache; Coffer fsyncs before acknowledging (see environment), rclone serve webdav does not.',
      'curl: keep-alive, `Expect: 100-continue` off for every server; small files with --parallel --parallel-max 4.',
      'client CPU s = the bench process and the curl runs it reaped during the row; other CPU s = every other busy CPU second on the machine during the row (other programs, kernel threads, hypervisor steal): a gauge of noise.',
      ...(noisyRows(sums).length
        ? [`Other work used more than a quarter of a CPU during: ${noisyRows(sums).join(', ')}. Those times are inflated; rerun on a quiet machine to confirm.`]
        : []),
      ...(Math.max(busyAtStart, busyAtEnd) > BUSY_LIMIT
        ? [`The machine was busy with other work (CPU ${pct(busyAtStart)} busy before the bench, ${pct(busyAtEnd)} after): absolute times are inflated and ratios noisier than usual.`]
        : []),
      ...(peers.has('coffer') ? [] : ['Coffer rows skipped: its server CLI was not found or not selected.']),
      ...(groups.has('sync') ? syncNotes() : []),
      ...(groups.has('client') ? clientNotes(clientOpts, (row, key) => extraOf(row, key)) : []),
    ],
    cells: sums,
    targets: judgeTargets(sums, MEM_LIMIT_MIB, bigDecision, groups),
  };
  const text = renderText(report);
  process.stdout.write(`\n${text}\n`);
  writeReport(join(repoRoot, 'bench', 'results'), report);
  log(`wrote bench/results/latest.json and latest.md (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
}

/** The transfer rows: curl PUT/GET against each server, the nginx GET, then the 5 GiB row. */
async function runTransfer(bigFile: string, src: string): Promise<void> {
  const small = writeSmallFiles(smallDir, 'small', fileCount, 4 * KiB);
  const bigT: Transfer[] = [{ path: 'big.bin', file: bigFile, bytes: bigSize }];
  const nginx = peers.has('nginx') ? await startNginx(src, join(tmp, 'nginx')) : null;
  try {
    for (let r = 1; r <= runs; r++) {
      log(`run ${r} of ${runs}`);
      const order = (['coffer', 'rclone'] as const).filter((p) => peers.has(p));
      if (r % 2 === 0) order.reverse();
      for (const peer of order) await runGroup(peer, r, bigFile, bigT, small);
      if (nginx) {
        const cfg = join(tmp, 'nginx-get.curl');
        writeCurlConfig(cfg, nginx, 'GET', bigT);
        await warmUpGet(nginx);
        await measure('get-1g', nginx, r, [bigFile], () => runCurl(cfg, 'GET', bigT, { parallel: 1, timeoutMs: 300_000 }));
        if (r === 1) {
          const bad = await verifyContent(nginx, bigFile, null);
          if (bad) cell('get-1g', 'nginx').failures.push(`content check: ${bad}`);
        }
      }
    }
    if (peers.has('coffer') && bigRowWanted()) for (let r = 1; r <= runs; r++) await runHuge(r);
  } finally {
    await nginx?.stop();
  }
}

/** Median of an extra figure of Coffer's samples on `row` (NaN when none). */
function extraOf(row: RowId, key: string): number {
  const xs = cells.find((c) => c.row.id === row && c.peer === 'coffer')?.samples.map((s) => s.extra?.[key]).filter((x): x is number => x !== undefined && Number.isFinite(x)) ?? [];
  return xs.length ? median(xs) : NaN;
}

function syncNotes(): string[] {
  const ex = (row: RowId, key: string) => {
    const xs = cells.find((c) => c.row.id === row && c.peer === 'coffer')?.samples.map((s) => s.extra?.[key]).filter((x): x is number => x !== undefined) ?? [];
    return xs.length ? median(xs) : NaN;
  };
  return [
    `Sync rows: the client is Node's fetch (keep-alive) in the bench process, one request at a time; each run starts a fresh Coffer (and rclone) server. Their "client CPU s" is the bench process itself (cutting, hashing, JSON).`,
    `Re-commit after 1 MiB changed: round 1 (its own row) cuts the ${sizeLabel(bigSize)} file with the FastCDC chunker, hashes, uploads the chunks in PUT /uploads/:id/chunks bodies of ≤ 32 MiB and commits; then (untimed) a copy gets 1 MiB of random bytes at its middle. ${deltaEdits} edit(s) per run, each a sample (1 MiB of fresh random bytes written over the original at its middle, then ${Math.min(64, Math.floor(bigSize / MiB / (2 * (deltaEdits + 1))))} MiB further on for each next edit so no edit finds chunks a previous one uploaded; committed with ifMatch of the previous version); the median and max are over all of them. An edit's time = re-cut + hash of the whole file (${ex('sync-delta', 'cutSeconds').toFixed(2)} s of it, median) + session + missing + chunks + commit {itemId, ifMatch}; "MiB sent" = request bodies (JSON + chunk frames) of round 2 (${ex('sync-delta', 'requests')} requests, ${ex('sync-delta', 'chunksSent')} of ${ex('sync-delta', 'chunks')} chunks sent), HTTP headers not counted. The patched range is read back and compared, and the server's contentHash checked against the local manifest hash.`,
    `Small files: Coffer = read + hash the files, one session, missing (≤ 10,000 hashes a request), chunks (≤ 1000 chunks or ≤ 8 MiB a request), commit-batch (≤ 1000 files a request, mustNotExist), every file must answer 201 (${ex('sync-small', 'requests')} requests). rclone = \`rclone copy SRC bench:sync\` (Debian rclone ${'1.60'}, remote from RCLONE_CONFIG_BENCH_* env vars, vendor=other) to \`rclone serve webdav\`; that client paces its requests (~31 files/s up whatever the server, BENCHMARKS.md), so the ratio measures the sync client a user would otherwise use. ${syncFiles.toLocaleString('en')} files (--sync-files; the issue says 10,000, which takes rclone ~5 min per run).`,
    `Push latency: one SSE listener (GET /api/v1/changes/stream), another connection commits ${pushChanges} 1 KiB files one at a time (session, chunks, commit); latency = from the commit's HTTP response to the first \`changed\` event with a higher position (0 when the event came first: ${ex('push', 'eventBeforeResponse')} of ${pushChanges}, median run). The server coalesces events to at most one per 100 ms. p50/p95 over all runs pooled; time = the ${pushChanges} commits.`,
    `Feed: ${feedChanges.toLocaleString('en')} changes made with commit-batch of empty files (1000 a request, one session) into one folder, then GET /api/v1/changes from the cursor of GET /api/v1/drive taken before them, limit=5000, until hasMore is false; positions checked gapless and the count exact.`,
  ];
}

/** Sync rows on one fresh server: Coffer gets all of them, rclone only the small-file copy. */
async function runSync(peer: 'coffer' | 'rclone', r: number, bigFile: string, syncDir: string, syncT: readonly Transfer[]): Promise<void> {
  const dataDir = join(tmp, `${peer}-sync-r${r}`);
  const logFile = join(tmp, `${peer}-sync-r${r}.log`);
  const rows: RowId[] = peer === 'coffer' ? [...SYNC_ROWS] : ['sync-small'];
  let server: Server;
  try {
    server = peer === 'coffer' ? await startCoffer(repoRoot, dataDir, logFile) : await startRclone(dataDir, logFile);
  } catch (e) {
    const msg = `start/setup: ${(e as Error).message}`;
    log(`  ${peer}: ${msg}`);
    for (const row of rows) cell(row, peer).failures.push(`run ${r}: ${msg}`);
    rmSync(dataDir, { recursive: true, force: true });
    return;
  }
  const s = server;
  const failRow = (row: RowId, msg: string) => {
    log(`  ${peer} ${ROWS[row].work}: ${msg}`);
    cell(row, peer).failures.push(`run ${r}: ${msg}`);
  };
  try {
    if (peer === 'rclone') {
      const timeoutMs = Math.max(120_000, syncFiles * 100); // 31 files/s expected: 10 files/s is the bound
      await measure('sync-small', s, r, [syncDir], () => smallFilesRclone(s, syncDir, 'sync', USER, PASSWORD, syncFiles, timeoutMs));
      return;
    }
    // Re-commit after a 1 MiB change.
    const modFile = join(tmp, 'big-modified.bin');
    try {
      const folder = await new SyncClient(s).folder('delta');
      let state: Awaited<ReturnType<typeof deltaFirst>>['state'];
      const ok = await measure('sync-first', s, r, [bigFile], async () => {
        const res = await deltaFirst(s, bigFile, folder.id);
        state = res.state;
        return res;
      });
      if (!ok || !state) cell('sync-delta', 'coffer').failures.push(`run ${r}: round 1 failed`);
      else {
        const st = state;
        // Several edits per run (1 MiB of fresh random bytes over the original near its middle, apart from each other): the number of chunks an edit touches varies.
        for (let e = 0; e < deltaEdits; e++) {
          const edit = makeEdit(bigFile, modFile, st.size, e, deltaEdits);
          if (!(await measure('sync-delta', s, r, [modFile], () => deltaSecond(s, st, modFile)))) break;
          const bad = await checkEdit(s, 'delta/big.bin', edit.at, edit.patch);
          if (bad) {
            failRow('sync-delta', `content check: ${bad}`);
            break;
          }
        }
      }
    } catch (e) {
      failRow('sync-delta', (e as Error).message);
    } finally {
      rmSync(modFile, { force: true });
    }
    await measure('sync-small', s, r, [syncDir], () => smallFilesCoffer(s, syncT.map((t) => t.file!), syncT.map((t) => t.path.split('/').pop()!), 'sync'));
    await measure('push', s, r, [], () => pushLatency(s, pushChanges));
    let cursor: string | undefined;
    const made = await measure('feed-write', s, r, [], async () => {
      const res = await makeChanges(s, feedChanges);
      cursor = res.cursor;
      return res;
    });
    if (!made || !cursor) cell('feed-read', 'coffer').failures.push(`run ${r}: making the changes failed`);
    else {
      const c = cursor;
      await measure('feed-read', s, r, [], () => readFeed(s, c, feedChanges, 300_000));
    }
  } finally {
    await s.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

let bigDecision = '';
/** Whether to run the 5 GiB row; 'auto' predicts its time from Coffer's 1 GiB PUT median in this run. */
function bigRowWanted(): boolean {
  if (big !== 'auto') {
    bigDecision = `forced ${big}`;
    return big === 'on';
  }
  const t = cell('put-1g', 'coffer').samples.map((s) => s.seconds);
  if (t.length === 0) {
    bigDecision = 'skipped: no Coffer PUT succeeded to predict its time (--big forces it)';
    return false;
  }
  const predicted = (median(t) * hugeSize) / bigSize;
  const on = predicted < AUTO_BIG_LIMIT_S;
  bigDecision = `${on ? 'run' : 'skipped'}: ${predicted.toFixed(0)} s per run predicted from the ${sizeLabel(bigSize)} PUT, limit ${AUTO_BIG_LIMIT_S} s${on ? '' : ' (--big forces it)'}`;
  log(`${sizeLabel(hugeSize)} row ${bigDecision}`);
  return on;
}

/** One server, fresh: 1 GiB PUT, 1 GiB GET, small PUT, small GET. */
async function runGroup(peer: 'coffer' | 'rclone', r: number, bigFile: string, bigT: Transfer[], small: Transfer[]): Promise<void> {
  const dataDir = join(tmp, `${peer}-data-r${r}`);
  const logFile = join(tmp, `${peer}-r${r}.log`);
  let server: Server;
  try {
    server = peer === 'coffer' ? await startCoffer(repoRoot, dataDir, logFile) : await startRclone(dataDir, logFile);
    await server.mkdir('small');
  } catch (e) {
    const msg = `start/setup: ${(e as Error).message}`;
    log(`  ${peer}: ${msg}`);
    for (const row of ['put-1g', 'get-1g', 'put-small', 'get-small'] as const) cell(row, peer).failures.push(`run ${r}: ${msg}`);
    rmSync(dataDir, { recursive: true, force: true });
    return;
  }
  try {
    const cfg = (name: string) => join(tmp, `${peer}-${name}.curl`);
    writeCurlConfig(cfg('put-big'), server, 'PUT', bigT);
    writeCurlConfig(cfg('get-big'), server, 'GET', bigT);
    writeCurlConfig(cfg('put-small'), server, 'PUT', small);
    writeCurlConfig(cfg('get-small'), server, 'GET', small);
    await measure('put-1g', server, r, [bigFile], () => runCurl(cfg('put-big'), 'PUT', bigT, { parallel: 1, timeoutMs: 300_000 }));
    await warmUpGet(server);
    await measure('get-1g', server, r, [server.dataDir], () => runCurl(cfg('get-big'), 'GET', bigT, { parallel: 1, timeoutMs: 300_000 }));
    await measure('put-small', server, r, [smallDir], () => runCurl(cfg('put-small'), 'PUT', small, { parallel: 4, timeoutMs: 600_000 }));
    await measure('get-small', server, r, [server.dataDir], () => runCurl(cfg('get-small'), 'GET', small, { parallel: 4, timeoutMs: 600_000 }));
    if (r === 1) {
      const bad = await verifyContent(server, bigFile, small[small.length >> 1]);
      if (bad) {
        log(`  ${peer}: content check failed: ${bad}`);
        cell('get-1g', peer).failures.push(`content check: ${bad}`);
      }
    }
  } finally {
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Coffer, fresh: one generated 5 GiB PUT, watching the server's RSS. */
async function runHuge(r: number): Promise<void> {
  const dataDir = join(tmp, `coffer-huge-r${r}`);
  let server: Server | null = null;
  try {
    server = await startCoffer(repoRoot, dataDir, join(tmp, `coffer-huge-r${r}.log`));
    const s = server;
    await measure('mem-5g', s, r, [], async () => {
      const res = await uploadGenerated(s.url('huge.bin'), s.authHeaders, hugeSize, 900_000);
      const ok = res.status === 201 || res.status === 200;
      return { ok, seconds: res.seconds, error: ok ? '' : `PUT huge.bin: HTTP ${res.status} ${res.body}`, statuses: { [res.status]: 1 } };
    });
  } catch (e) {
    cell('mem-5g', 'coffer').failures.push(`run ${r}: ${(e as Error).message}`);
    log(`  coffer ${ROWS['mem-5g'].work}: FAILED ${(e as Error).message}`);
  } finally {
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

try {
  await main();
} catch (e) {
  log(`bench failed: ${(e as Error).stack ?? e}`);
  process.exitCode = 1;
} finally {
  cleanup();
}
