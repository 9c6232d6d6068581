/**
 * The client for every timed row: curl, driven by a config file (`-K`) so the
 * same command shape serves one 1 GiB transfer or 10,000 small ones
 * (`--parallel --parallel-max 4`, connections kept alive and reused).
 *
 * Every transfer writes one `%{http_code} %{size_download} %{size_upload}`
 * line; a run passes only when curl exits 0, every transfer answered the
 * expected status class (2xx) and moved the expected number of bytes.
 * `Expect: 100-continue` is turned off for all servers alike: it would add a
 * round trip per upload and a 1 s stall where a server does not answer it.
 */
import { writeFileSync } from 'node:fs';
import { run } from './proc.ts';
import type { Server } from './peers.ts';

export interface Transfer {
  /** Path on the server, e.g. "big.bin" or "small/f00001". */
  path: string;
  /** Local source file (PUT only). */
  file?: string;
  /** Bytes that must move: uploaded for PUT, downloaded for GET. */
  bytes: number;
}

export interface TransferResult {
  ok: boolean;
  /** Wall time of the curl process, spawn to exit. */
  seconds: number;
  /** Empty when ok; else a short description of what went wrong. */
  error: string;
  statuses: Record<string, number>;
}

function quote(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** Writes the curl config for `transfers` against `server` to `cfgFile`. */
export function writeCurlConfig(cfgFile: string, server: Server, method: 'PUT' | 'GET', transfers: readonly Transfer[]): void {
  const lines = [
    'header = "Expect:"',
    'write-out = "%{http_code} %{size_download} %{size_upload}\\n"',
    ...server.curlAuth,
  ];
  for (const t of transfers) {
    lines.push(`url = ${quote(server.url(t.path))}`);
    if (method === 'PUT') {
      if (!t.file) throw new Error(`PUT ${t.path}: no source file`);
      lines.push(`upload-file = ${quote(t.file)}`);
    }
    lines.push('output = "/dev/null"');
  }
  writeFileSync(cfgFile, lines.join('\n') + '\n');
}

/** Runs curl over a config written by writeCurlConfig and checks every transfer. */
export async function runCurl(
  cfgFile: string,
  method: 'PUT' | 'GET',
  transfers: readonly Transfer[],
  opts: { parallel: number; timeoutMs: number },
): Promise<TransferResult> {
  // curl 7.88's parallel progress meter ignores -s; --no-progress-meter silences it and keeps error messages.
  const args = ['--no-progress-meter', ...(opts.parallel > 1 ? ['--parallel', '--parallel-max', String(opts.parallel)] : []), '-K', cfgFile];
  const res = await run('curl', args, { timeoutMs: opts.timeoutMs });
  const statuses: Record<string, number> = {};
  const problems: string[] = [];
  const lines = res.stdout.split('\n').filter((l) => l.trim() !== '');
  // With --parallel, lines arrive in completion order, so only the totals can be checked per line.
  let wrongSize = 0;
  const sizes = new Set(transfers.map((t) => t.bytes));
  for (const line of lines) {
    const [code = '???', down = '0', up = '0'] = line.trim().split(/\s+/);
    statuses[code] = (statuses[code] ?? 0) + 1;
    const moved = Number(method === 'PUT' ? up : down);
    if (code.startsWith('2') && !sizes.has(moved)) wrongSize++;
  }
  const non2xx = lines.length - lines.filter((l) => l.startsWith('2')).length;
  if (res.timedOut) problems.push(`curl killed after ${opts.timeoutMs / 1000} s`);
  else if (res.code !== 0) problems.push(`curl exited ${res.code}${res.signal ? ` (${res.signal})` : ''}`);
  if (lines.length !== transfers.length) problems.push(`${lines.length} of ${transfers.length} transfers reported`);
  if (non2xx > 0) {
    const codes = Object.entries(statuses)
      .filter(([c]) => !c.startsWith('2'))
      .map(([c, n]) => `${n}× ${c}`)
      .join(', ');
    problems.push(`${non2xx} non-2xx (${codes})`);
  }
  if (wrongSize > 0) problems.push(`${wrongSize} transfers moved an unexpected byte count`);
  if (res.stderr.trim()) problems.push(`stderr: ${res.stderr.trim().split('\n').slice(0, 3).join(' | ')}`);
  return { ok: problems.length === 0, seconds: res.seconds, error: problems.join('; '), statuses };
}

/** Fetches `length` bytes at `offset` with a Range request (untimed content check). */
export async function fetchRange(server: Server, path: string, offset: number, length: number): Promise<Buffer> {
  const res = await fetch(server.url(path), {
    headers: { ...server.authHeaders, range: `bytes=${offset}-${offset + length - 1}` },
    signal: AbortSignal.timeout(30_000),
  });
  const body = Buffer.from(await res.arrayBuffer());
  if (res.status !== 206) throw new Error(`GET ${path} Range bytes=${offset}-${offset + length - 1}: HTTP ${res.status}, expected 206`);
  return body;
}
