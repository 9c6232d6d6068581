/**
 * `npm run bench`: Coffer's server next to peer programs, in the same run, on
 * the same files, with the same client (curl). Never part of the test suite.
 *
 *   node bench/run.ts [--runs N] [--big | --no-big] [--peers coffer,rclone,nginx]
 *                     [--files N] [--size-mib N] [--keep]
 *
 * Rows (each the median of N runs, each run on a fresh server and data folder):
 *   1 GiB PUT / GET, 10,000 × 4 KiB PUT / GET with curl --parallel-max 4:
 *     coffer (REST API) and rclone serve webdav; the 1 GiB GET also from nginx.
 *   5 GiB PUT to Coffer: server memory growth (VmHWM − RSS before). On by default
 *     when this run's 1 GiB PUT predicts under a minute for 5 GiB; --big or
 *     BENCH_5G=1 forces it on, --no-big or BENCH_5G=0 off.
 * See bench/README.md for what is measured and the traps.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, cpus, totalmem, release, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { fetchRange, runCurl, writeCurlConfig, type Transfer, type TransferResult } from './lib/curl.ts';
import { GiB, KiB, MiB, readAt, uploadGenerated, writeRandomFile, writeSmallFiles } from './lib/fixtures.ts';
import { COFFER_CLI, startCoffer, startNginx, startRclone, type PeerName, type Server } from './lib/peers.ts';
import { killAllOwned, run, syncDisks } from './lib/proc.ts';
import { beginCost, machineBusy } from './lib/proc-stats.ts';
import { warmPageCache } from './lib/page-cache.ts';
import { judgeTargets, median, noisyRows, renderText, summarise, writeReport, type Cell, type Report, type RowDef, type RowId } from './lib/report.ts';
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
  },
});
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

const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const sizeLabel = (n: number) => (n % GiB === 0 ? `${n / GiB} GiB` : `${Math.round(n / MiB)} MiB`);

const ROWS: Record<RowId, RowDef> = {
  'put-1g': { id: 'put-1g', work: `${sizeLabel(bigSize)} PUT`, amount: bigSize, unit: 'bytes' },
  'get-1g': { id: 'get-1g', work: `${sizeLabel(bigSize)} GET`, amount: bigSize, unit: 'bytes' },
  'put-small': { id: 'put-small', work: `${fileCount.toLocaleString('en')} × 4 KiB PUT, 4 parallel`, amount: fileCount, unit: 'files' },
  'get-small': { id: 'get-small', work: `${fileCount.toLocaleString('en')} × 4 KiB GET, 4 parallel`, amount: fileCount, unit: 'files' },
  'mem-5g': { id: 'mem-5g', work: `${sizeLabel(hugeSize)} PUT: memory growth`, amount: hugeSize, unit: 'bytes' },
};

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
async function measure(row: RowId, server: Server, runNo: number, warm: readonly string[], work: () => Promise<TransferResult>): Promise<boolean> {
  const c = cell(row, server.name);
  warmPageCache(warm);
  syncDisks();
  const end = beginCost(server.pid);
  let result: TransferResult;
  try {
    result = await work();
  } catch (e) {
    result = { ok: false, seconds: NaN, error: (e as Error).message, statuses: {} };
  }
  const cost = end();
  if (result.ok) {
    c.samples.push({ seconds: result.seconds, ...cost });
    log(`  ${server.name.padEnd(6)} ${ROWS[row].work}: ${result.seconds.toFixed(2)} s, server CPU ${cost.cpuSeconds.toFixed(2)} s, peak RSS ${cost.peakRssMiB.toFixed(0)} MiB`);
  } else {
    c.failures.push(`run ${runNo}: ${result.error}`);
    log(`  ${server.name.padEnd(6)} ${ROWS[row].work}: FAILED ${result.error}`);
  }
  return result.ok;
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
const watchdog = setTimeout(() => {
  log(`watchdog: still running after ${WATCHDOG_MS / 60_000} min, giving up`);
  cleanup();
  process.exit(2);
}, WATCHDOG_MS);
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
    return /\.(sync|datasync)\(\)/.test(store) ? 'yes, always (local.blob-store.ts syncs each blob before rename)' : 'no sync() found in local.blob-store.ts';
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
  log(`writing ${sizeLabel(bigSize)} and ${fileCount} × 4 KiB random source files`);
  mkdirSync(src, { recursive: true });
  writeRandomFile(bigFile, bigSize);
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
    options: { runs, big, bigDecision, peers: [...peers], files: fileCount, bigSize, hugeSize },
    notes: [
      `Times are medians of ${runs} run(s) of the client (curl) wall time; each run starts a fresh server and data folder. Client and server share the machine's CPUs.`,
      'Coffer time ÷ this: below 1 means Coffer was faster than that server on the row.',
      'server CPU s = utime+stime delta of the server process (and its children) over the row; peak RSS = VmHWM, reset per row via /proc/PID/clear_refs (* = since process start); RSS growth = peak − RSS when the row started.',
      'Before every timed row the files it reads (the sources of an upload, the server\'s data folder for a download) are read once, untimed, into the page cache: this machine pages out page cache untouched for ~60 s (DAMON).',
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
    ],
    cells: sums,
    targets: judgeTargets(sums, MEM_LIMIT_MIB, bigDecision),
  };
  const text = renderText(report);
  process.stdout.write(`\n${text}\n`);
  writeReport(join(repoRoot, 'bench', 'results'), report);
  log(`wrote bench/results/latest.json and latest.md (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
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
