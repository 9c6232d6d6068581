/**
 * Results: per (row, server) cell the samples of each run, summarised as the
 * median (min–max) and judged against the targets; printed as a plain table
 * and written as JSON + markdown.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PeerName } from './peers.ts';
import type { ServerCost } from './proc-stats.ts';

export type RowId = 'put-1g' | 'get-1g' | 'put-small' | 'get-small' | 'mem-5g'
  | 'sync-first' | 'sync-delta' | 'sync-small' | 'push' | 'feed-write' | 'feed-read'
  | 'client-first' | 'client-noop' | 'client-down' | 'client-first-big' | 'client-noop-big' | 'client-first-1g' | 'client-delta'
  | 'client-watch' | 'client-disconnect' | 'client-disconnect-pending';

/** Rows of the sync protocol (`--only sync`). */
export const SYNC_ROWS: readonly RowId[] = ['sync-first', 'sync-delta', 'sync-small', 'push', 'feed-write', 'feed-read'];

/** Rows of the real sync client, the `coffer` CLI (`--only client`). */
export const CLIENT_ROWS: readonly RowId[] = ['client-first', 'client-noop', 'client-down', 'client-first-big', 'client-noop-big', 'client-first-1g', 'client-delta', 'client-watch', 'client-disconnect', 'client-disconnect-pending'];

export interface RowDef {
  id: RowId;
  work: string;
  /** What one run moves: bytes, or a number of files. */
  amount: number;
  /** bytes → MiB/s, files → files/s, changes → changes/s, sent → MiB sent, latency → p50/p95 of the pooled latencies, wall → the time alone. */
  unit: 'bytes' | 'files' | 'changes' | 'sent' | 'latency' | 'wall';
}

export interface Sample extends ServerCost {
  seconds: number;
  /** Row-specific figures (e.g. bytesSent, requests). */
  extra?: Record<string, number>;
  latenciesMs?: number[];
}

export interface Cell {
  row: RowDef;
  peer: PeerName;
  samples: Sample[];
  failures: string[];
}

export interface CellSummary {
  work: string;
  row: RowId;
  peer: PeerName;
  ok: boolean;
  runs: number;
  failures: string[];
  seconds: { median: number; min: number; max: number } | null;
  /** MiB/s for byte rows, files/s for file rows (from the median time). */
  rate: number | null;
  rateUnit: string;
  /** Sent rows: median request-body bytes (MiB), max over runs. */
  sentMiB?: { median: number; max: number };
  /** CLI rows: medians of the preload's split of the process's wall time (bench/lib/cli-timing.ts). */
  cli?: { startupSeconds: number; engineSeconds: number; exitSeconds: number; requests: number };
  /** Latency rows: percentiles over all runs' latencies pooled. */
  latencyMs?: { p50: number; p95: number; max: number; n: number };
  serverCpuSeconds: number | null;
  clientCpuSeconds: number | null;
  /** Busy CPU of everything else on the machine during the row (median): a noise gauge. */
  otherCpuSeconds: number | null;
  peakRssMiB: number | null;
  rssGrowthMiB: number | null;
  peakSinceStart: boolean;
  /** Coffer's median time ÷ this server's, on the same row (null for Coffer itself). */
  cofferTimeRatio: number | null;
  samples: Sample[];
}

export interface Target {
  text: string;
  measured: string;
  met: boolean | null;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Nearest-rank percentile (0 < p ≤ 100). */
export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

const UNIT_LABEL: Record<RowDef['unit'], string> = { bytes: 'MiB/s', files: 'files/s', changes: 'changes/s', sent: 'MiB sent', latency: 'ms', wall: 's' };

/** Median of an extra figure over the samples that have it (NaN when none). */
export function extraMedian(samples: readonly Sample[], key: string): number {
  const xs = samples.map((s) => s.extra?.[key]).filter((x): x is number => x !== undefined && Number.isFinite(x));
  return xs.length ? median(xs) : NaN;
}

export function summarise(cells: readonly Cell[]): CellSummary[] {
  const out = cells.map((c): CellSummary => {
    const ok = c.failures.length === 0 && c.samples.length > 0;
    const t = c.samples.map((s) => s.seconds);
    const sec = ok ? { median: median(t), min: Math.min(...t), max: Math.max(...t) } : null;
    const MiB = 1024 * 1024;
    const sent = c.samples.map((s) => (s.extra?.bytesSent ?? NaN) / MiB);
    const lat = c.samples.flatMap((s) => s.latenciesMs ?? []);
    const unit = c.row.unit;
    const perSecond = unit === 'bytes' ? c.row.amount / MiB : c.row.amount;
    const engine = extraMedian(c.samples, 'engineSeconds');
    return {
      ...(ok && Number.isFinite(engine) ? { cli: { startupSeconds: extraMedian(c.samples, 'startupSeconds'), engineSeconds: engine, exitSeconds: extraMedian(c.samples, 'exitSeconds'), requests: extraMedian(c.samples, 'requests') } } : {}),
      ...(ok && unit === 'sent' ? { sentMiB: { median: median(sent), max: Math.max(...sent) } } : {}),
      ...(ok && unit === 'latency' && lat.length ? { latencyMs: { p50: percentile(lat, 50), p95: percentile(lat, 95), max: Math.max(...lat), n: lat.length } } : {}),
      work: c.row.work,
      row: c.row.id,
      peer: c.peer,
      ok,
      runs: c.samples.length,
      failures: c.failures,
      seconds: sec,
      rate: !sec ? null : unit === 'sent' ? median(sent) : unit === 'latency' ? (lat.length ? percentile(lat, 95) : null) : unit === 'wall' ? null : perSecond / sec.median,
      rateUnit: UNIT_LABEL[unit],
      serverCpuSeconds: ok ? median(c.samples.map((s) => s.cpuSeconds)) : null,
      clientCpuSeconds: ok ? median(c.samples.map((s) => s.clientCpuSeconds)) : null,
      otherCpuSeconds: ok ? median(c.samples.map((s) => s.otherCpuSeconds)) : null,
      peakRssMiB: ok ? Math.max(...c.samples.map((s) => s.peakRssMiB)) : null,
      rssGrowthMiB: ok ? median(c.samples.map((s) => s.peakRssMiB - s.rssBeforeMiB)) : null,
      peakSinceStart: c.samples.some((s) => s.peakSinceStart),
      cofferTimeRatio: null,
      samples: c.samples,
    };
  });
  for (const s of out) {
    const coffer = out.find((o) => o.row === s.row && o.peer === 'coffer');
    if (s.peer !== 'coffer' && coffer?.seconds && s.seconds) s.cofferTimeRatio = coffer.seconds.median / s.seconds.median;
  }
  return out;
}

function find(sums: readonly CellSummary[], row: RowId, peer: PeerName): CellSummary | undefined {
  return sums.find((s) => s.row === row && s.peer === peer && s.ok);
}

/** Rows during which other work used more than `share` of one CPU: their times are suspect. */
export function noisyRows(sums: readonly CellSummary[], share = 0.25): string[] {
  return sums.filter((s) => s.seconds && s.otherCpuSeconds != null && s.otherCpuSeconds > share * s.seconds.median).map((s) => `${s.work} (${s.peer})`);
}

/** The issue's targets, judged from the medians of this run. */
export function judgeTargets(sums: readonly CellSummary[], memLimitMiB: number, bigDecision: string, groups: ReadonlySet<string> = new Set(['transfer', 'sync'])): Target[] {
  const ratio = (row: RowId, peer: PeerName) => {
    const c = find(sums, row, 'coffer')?.seconds?.median;
    const p = find(sums, row, peer)?.seconds?.median;
    return c && p ? c / p : null;
  };
  const targets: Target[] = [];
  if (groups.has('transfer')) transferTargets(targets, sums, ratio, memLimitMiB, bigDecision);
  if (groups.has('sync')) syncTargets(targets, sums, ratio);
  if (groups.has('client')) clientTargets(targets, sums, ratio);
  return targets;
}

const cliSplit = (s: CellSummary | undefined) => (s?.cli ? `; start-up ${f(s.cli.startupSeconds)} + engine ${f(s.cli.engineSeconds)} + exit ${f(s.cli.exitSeconds)} s` : '');

function clientTargets(targets: Target[], sums: readonly CellSummary[], ratio: (row: RowId, peer: PeerName) => number | null): void {
  const wasRun = (row: RowId) => sums.some((s) => s.row === row);
  const missing = (row: RowId) => (wasRun(row) ? 'failed' : 'not run');
  const first = ratio('client-first', 'rclone');
  const firstRow = sums.find((s) => s.row === 'client-first');
  targets.push({
    text: `${firstRow?.work ?? 'coffer sync: first sync of small files'}: rate ≥ 5× rclone copy's`,
    measured: first === null ? (firstRow ? 'failed or peer not run' : 'not run') : `${(1 / first).toFixed(1)}× (${f(find(sums, 'client-first', 'coffer')?.rate ?? null, 0)} vs ${f(find(sums, 'client-first', 'rclone')?.rate ?? null, 0)} files/s)`,
    met: first === null ? null : 1 / first >= 5,
  });
  for (const [row, limit] of [['client-noop', 0.5], ['client-noop-big', 3]] as const) {
    const c = find(sums, row, 'coffer');
    const r = find(sums, row, 'rclone');
    const any = sums.find((s) => s.row === row);
    if (!any && row === 'client-noop-big') {
      targets.push({ text: `coffer sync, nothing changed, 100,000 files: < ${limit} s`, measured: 'not run (--client-big)', met: null });
      continue;
    }
    targets.push({
      text: `${any?.work ?? row}: CLI wall time < ${limit} s`,
      measured: c?.seconds ? `${c.seconds.median.toFixed(2)} s${cliSplit(c)}${r?.seconds ? `; rclone sync ${r.seconds.median.toFixed(2)} s` : ''}` : missing(row),
      met: c?.seconds ? c.seconds.median < limit : null,
    });
  }
  const delta = find(sums, 'client-delta', 'coffer');
  const deltaR = find(sums, 'client-delta', 'rclone');
  targets.push({
    text: `${delta?.work ?? 'coffer sync after 1 MiB changed in a big file'}: client sent < 5 MiB`,
    measured: delta?.sentMiB ? `${delta.sentMiB.median.toFixed(2)} MiB (max ${delta.sentMiB.max.toFixed(2)}) in ${delta.seconds!.median.toFixed(2)} s${deltaR?.sentMiB ? `; rclone copyto ${deltaR.sentMiB.median.toFixed(1)} MiB in ${deltaR.seconds!.median.toFixed(2)} s` : ''}` : missing('client-delta'),
    met: delta?.sentMiB ? delta.sentMiB.max < 5 : null,
  });
  const watch = find(sums, 'client-watch', 'coffer');
  targets.push({
    text: 'change → other device, both `coffer sync --watch`: p95 < 2 s',
    measured: watch?.latencyMs ? `p50 ${watch.latencyMs.p50.toFixed(0)} ms, p95 ${watch.latencyMs.p95.toFixed(0)} ms, max ${watch.latencyMs.max.toFixed(0)} ms (n = ${watch.latencyMs.n})` : missing('client-watch'),
    met: watch?.latencyMs ? watch.latencyMs.p95 < 2000 : null,
  });
  const dc = find(sums, 'client-disconnect', 'coffer');
  const dcRow = sums.find((s) => s.row === 'client-disconnect');
  targets.push({
    text: `${dcRow?.work ?? 'coffer disconnect, nothing pending'}: < 1 s (the issue asks it at 100,000 files)`,
    measured: dc?.seconds ? `${dc.seconds.median.toFixed(2)} s${cliSplit(dc)}` : missing('client-disconnect'),
    met: dc?.seconds ? dc.seconds.median < 1 : null,
  });
  const dp = find(sums, 'client-disconnect-pending', 'coffer');
  const dpRow = sums.find((s) => s.row === 'client-disconnect-pending');
  targets.push({
    text: `${dpRow?.work ?? 'coffer disconnect with pending files'}: every pending file on the server, credentials gone (no numeric target)`,
    measured: dp?.seconds ? `checked; ${dp.seconds.median.toFixed(2)} s${cliSplit(dp)}` : missing('client-disconnect-pending'),
    met: dp?.seconds ? true : wasRun('client-disconnect-pending') ? false : null,
  });
}

function syncTargets(targets: Target[], sums: readonly CellSummary[], ratio: (row: RowId, peer: PeerName) => number | null): void {
  const delta = find(sums, 'sync-delta', 'coffer');
  targets.push({
    text: `${delta?.work ?? 're-commit after a 1 MiB change'}: sent < 5 MiB`,
    measured: delta?.sentMiB ? `${delta.sentMiB.median.toFixed(2)} MiB (max ${delta.sentMiB.max.toFixed(2)}) in ${delta.seconds!.median.toFixed(2)} s` : sums.some((s) => s.row === 'sync-delta') ? 'failed' : 'not run',
    met: delta?.sentMiB ? delta.sentMiB.max < 5 : null,
  });
  const small = ratio('sync-small', 'rclone');
  const smallRow = sums.find((s) => s.row === 'sync-small');
  targets.push({
    text: `${smallRow?.work ?? 'small files through the chunk protocol'}: rate ≥ 5× rclone copy's`,
    measured: small === null ? (smallRow ? 'failed or peer not run' : 'not run') : `${(1 / small).toFixed(1)}×`,
    met: small === null ? null : 1 / small >= 5,
  });
  const push = find(sums, 'push', 'coffer');
  targets.push({
    text: 'push latency (commit answered → `changed` event) p95 < 1 s',
    measured: push?.latencyMs ? `p50 ${push.latencyMs.p50.toFixed(0)} ms, p95 ${push.latencyMs.p95.toFixed(0)} ms (n = ${push.latencyMs.n})` : sums.some((s) => s.row === 'push') ? 'failed' : 'not run',
    met: push?.latencyMs ? push.latencyMs.p95 < 1000 : null,
  });
  const feed = find(sums, 'feed-read', 'coffer');
  const feedRow = sums.find((s) => s.row === 'feed-read');
  targets.push({
    text: `${feedRow?.work ?? 'feed catch-up'} (no numeric target: reported)`,
    measured: feed?.rate ? `${feed.rate.toFixed(0)} changes/s (${feed.seconds!.median.toFixed(2)} s)` : feedRow ? 'failed' : 'not run',
    met: null,
  });
}

function transferTargets(targets: Target[], sums: readonly CellSummary[], ratio: (row: RowId, peer: PeerName) => number | null, memLimitMiB: number, bigDecision: string): void {
  const dl = ratio('get-1g', 'nginx');
  targets.push({ text: "1 GiB download time ≤ 1.1× nginx's", measured: dl === null ? 'n/a' : `${dl.toFixed(2)}×`, met: dl === null ? null : dl <= 1.1 });
  const ul = ratio('put-1g', 'rclone');
  targets.push({ text: "1 GiB upload rate ≥ 2× rclone's", measured: ul === null ? 'n/a' : `${(1 / ul).toFixed(2)}×`, met: ul === null ? null : 1 / ul >= 2 });
  for (const [row, what] of [['put-small', 'upload'], ['get-small', 'download']] as const) {
    const r = ratio(row, 'rclone');
    targets.push({ text: `10,000 × 4 KiB ${what} rate ≥ rclone's`, measured: r === null ? 'n/a' : `${(1 / r).toFixed(2)}×`, met: r === null ? null : 1 / r >= 1 });
  }
  const mem = find(sums, 'mem-5g', 'coffer');
  targets.push({
    text: `server memory growth during a 5 GiB upload < ${memLimitMiB} MiB`,
    measured: mem?.rssGrowthMiB == null ? (sums.some((s) => s.row === 'mem-5g') ? 'failed' : bigDecision.startsWith('skipped') ? 'skipped (see "5 GiB row" below)' : 'not run') : `${mem.rssGrowthMiB.toFixed(1)} MiB`,
    met: mem?.rssGrowthMiB == null ? null : mem.rssGrowthMiB < memLimitMiB,
  });
}

/** First meaningful line of an error, short enough for a table cell. */
function oneLine(s: string): string {
  const lines = s.split('\n').map((l) => l.trim()).filter(Boolean);
  const detail = lines.find((l, i) => i > 0 && /error|exited|HTTP|refused|not /i.test(l));
  const text = detail && detail !== lines[0] ? `${lines[0]} … ${detail}` : (lines[0] ?? '');
  return text.length > 160 ? `${text.slice(0, 157)}…` : text;
}

const f = (n: number | null | undefined, d = 2) => (n == null || !Number.isFinite(n) ? '–' : n.toFixed(d));

function cellRow(s: CellSummary): string[] {
  if (!s.ok) return [s.work, s.peer, `FAILED: ${oneLine(s.failures[0] ?? 'no run')}`, '', '', '', '', '', '', ''];
  const sec = s.seconds!;
  return [
    s.work,
    s.peer,
    `${f(sec.median)} (${f(sec.min)}–${f(sec.max)})`,
    (s.latencyMs ? `p50 ${f(s.latencyMs.p50, 0)} ms, p95 ${f(s.latencyMs.p95, 0)} ms` : s.sentMiB ? `${f(s.sentMiB.median)} MiB sent` : s.rate == null ? '' : `${f(s.rate, 0)} ${s.rateUnit}`)
      + (s.cli ? `${s.rate == null && !s.sentMiB && !s.latencyMs ? '' : '; '}start-up ${f(s.cli.startupSeconds)} + engine ${f(s.cli.engineSeconds)} + exit ${f(s.cli.exitSeconds)} s, ${f(s.cli.requests, 0)} req` : ''),
    s.cofferTimeRatio == null ? '' : `${f(s.cofferTimeRatio)}×`,
    f(s.serverCpuSeconds),
    f(s.clientCpuSeconds),
    f(s.otherCpuSeconds),
    f(s.peakRssMiB, 0) + (s.peakSinceStart ? '*' : ''),
    f(s.rssGrowthMiB, 1),
  ];
}

const HEAD = ['work', 'server', 'time s, median (min–max)', 'rate', 'Coffer time ÷ this', 'server CPU s', 'client CPU s', 'other CPU s', 'peak RSS MiB', 'RSS growth MiB'];
const TARGET_HEAD = ['target', 'measured', 'met'];
const verdict = (t: Target) => (t.met === null ? '–' : t.met ? 'yes' : 'NO');

function textTable(rows: string[][]): string {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (c ?? '').padEnd(w[i])).join('  ').trimEnd()).join('\n');
}

function mdTable(rows: string[][]): string {
  const esc = (c: string) => c.replace(/\|/g, '\\|');
  return [`| ${rows[0].map(esc).join(' | ')} |`, `|${rows[0].map(() => '---').join('|')}|`, ...rows.slice(1).map((r) => `| ${r.map(esc).join(' | ')} |`)].join('\n');
}

export interface Report {
  date: string;
  environment: Record<string, string>;
  options: Record<string, unknown>;
  notes: string[];
  cells: CellSummary[];
  targets: Target[];
}

export function renderText(r: Report): string {
  return [
    textTable([HEAD, ...r.cells.map(cellRow)]),
    '',
    textTable([TARGET_HEAD, ...r.targets.map((t) => [t.text, t.measured, verdict(t)])]),
    '',
    ...r.notes.map((n) => `- ${n}`),
    ...Object.entries(r.environment).map(([k, v]) => `- ${k}: ${v}`),
  ].join('\n');
}

export function renderMarkdown(r: Report): string {
  return [
    `# Coffer bench, ${r.date}`,
    '',
    Object.entries(r.environment)
      .map(([k, v]) => `- ${k}: ${v}`)
      .join('\n'),
    '',
    mdTable([HEAD, ...r.cells.map(cellRow)]),
    '',
    '## Targets',
    '',
    mdTable([TARGET_HEAD, ...r.targets.map((t) => [t.text, t.measured, verdict(t)])]),
    '',
    '## Notes',
    '',
    ...r.notes.map((n) => `- ${n}`),
    '',
  ].join('\n');
}

export function writeReport(dir: string, r: Report): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'latest.json'), JSON.stringify(r, null, 2) + '\n');
  writeFileSync(join(dir, 'latest.md'), renderMarkdown(r));
}
