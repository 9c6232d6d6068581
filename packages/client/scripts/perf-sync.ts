/**
 * Measures the sync client on a large folder (issues 6 and 7). Not part of
 * `npm test`.
 *
 *   node packages/client/scripts/perf-sync.ts --files 10000 [--runs 3] [--pending 1000]
 *        [--only sync,engine,pending,accounting,dry-run,disconnect,pending-disconnect] [--dir D] [--fresh] [--profile]
 *   node packages/client/scripts/perf-sync.ts top <file.cpuprofile> [--n 30]
 *
 * A workspace (default /tmp/coffer-perf-<files>) holds a real `coffer server`
 * (its own process, SQLite and a local blob folder), a client home
 * ($COFFER_CLIENT_HOME) and the sync folder: <files> files of 4 KiB in 100
 * folders. The first time, the account is signed in through the CLI and the
 * real client's first sync uploads everything (timed and reported); later
 * runs reuse the synced workspace (`--fresh` builds it again).
 *
 * Then, each `--runs` times (the median is printed, with every run):
 * - sync: `coffer sync` with nothing changed, a CLI process: wall time and
 *   its CPU time (user + system, all threads, from a preload: perf-usage.mjs);
 * - engine: the same in this process (syncOnce alone; the modules stay loaded
 *   from one run to the next, so later runs are warm);
 * - pending: the pending check of a disconnect (pendingLocal: the walk of the
 *   folder and the comparison with the index), in this process; and the full
 *   accounting (accountLocal: the trees, and which files the server confirmed);
 * - dry-run: `coffer disconnect --dry-run`;
 * - disconnect: `coffer disconnect` with nothing pending (the account's state
 *   is saved before and put back after, then signed in again);
 * - pending-disconnect: `coffer disconnect` with `--pending` new 4 KiB files
 *   (it uploads them, then signs out); afterwards the state is put back, the
 *   account signed in again and the files removed (on both sides) by syncs.
 *
 * `--profile` runs every CLI process with `--cpu-prof` (profiles in
 * <workspace>/prof/, each summarized with `top`). The CLI is bin/coffer, as
 * people run it; this script runs itself again with UV_USE_IO_URING=1 (as
 * bin/coffer does) for the in-process rows.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { spawnServer } from '../../server/test/support/processes.ts';

const COFFER = fileURLToPath(new URL('../../../bin/coffer', import.meta.url));
const USAGE = new URL('./perf-usage.mjs', import.meta.url).href;
const USER = 'perf';
const PASSWORD = 'perf-horse-battery-staple';
const ACCOUNT = 'perf';
const FOLDERS = 100;
const FILE_BYTES = 4096;

interface Sample { wallMs: number; cpuMs: number }

if (process.argv[2] === 'top') {
  const { values, positionals } = parseArgs({ args: process.argv.slice(3), allowPositionals: true, options: { n: { type: 'string', default: '30' } } });
  for (const f of positionals) printTop(f, Number(values.n));
} else await main();

async function main(): Promise<void> {
  if (process.env.UV_USE_IO_URING !== '1') {
    // libuv reads it when the loop starts: run again with it, as bin/coffer runs the CLI.
    const child = spawn(process.execPath, process.argv.slice(1), { stdio: 'inherit', env: { ...process.env, UV_USE_IO_URING: '1' } });
    child.on('close', (code) => process.exit(code ?? 1));
    return;
  }
  const { values } = parseArgs({
    options: {
      files: { type: 'string', default: '10000' }, runs: { type: 'string', default: '3' }, pending: { type: 'string', default: '1000' },
      only: { type: 'string', default: 'sync,engine,pending,accounting,dry-run,disconnect,pending-disconnect' }, dir: { type: 'string' },
      fresh: { type: 'boolean', default: false }, profile: { type: 'boolean', default: false },
    },
  });
  const files = Number(values.files);
  const runs = Number(values.runs);
  const pendingFiles = Number(values.pending);
  const only = new Set(values.only!.split(','));
  const ws = values.dir ?? `/tmp/coffer-perf-${files}`;
  const paths = { ws, data: join(ws, 'server'), home: join(ws, 'home'), folder: join(ws, 'Coffer'), prof: join(ws, 'prof'), saved: join(ws, 'saved'), state: join(ws, 'workspace.json') };
  if (values.fresh) rmSync(ws, { recursive: true, force: true });
  const fresh = !existsSync(paths.state);
  if (fresh) {
    rmSync(ws, { recursive: true, force: true });
    mkdirSync(paths.data, { recursive: true });
    mkdirSync(paths.home, { recursive: true });
    await cli(paths, ['admin', 'create-user', USER, '--password', PASSWORD, '--data', paths.data]);
    writeFileSync(paths.state, JSON.stringify({ port: await freePort(), files, synced: false }));
  }
  const state = JSON.parse(readFileSync(paths.state, 'utf8')) as { port: number; files: number; synced: boolean; firstSync?: Sample };
  const server = await spawnServer(['--data', paths.data], { args: ['--port', String(state.port)], env: { UV_USE_IO_URING: '1' } });
  const results = new Map<string, Sample[]>();
  const add = (name: string, s: Sample) => { results.set(name, [...(results.get(name) ?? []), s]); log(`${name}: ${fmt(s)}`); };
  try {
    const url = server.url;
    if (!state.synced) {
      if (!existsSync(join(paths.home, 'accounts.json'))) await cli(paths, ['login', url, '--folder', paths.folder, '--username', USER, '--password', PASSWORD, '--name', ACCOUNT, '--device-name', 'perf-laptop']);
      const t0 = performance.now();
      makeFiles(paths.folder, '', files);
      log(`made ${files} files of ${FILE_BYTES} B in ${FOLDERS} folders (${Math.round(performance.now() - t0)} ms)`);
      const first = await cli(paths, ['sync', '--json'], { timeoutMs: 3 * 3600_000 });
      state.firstSync = first;
      state.synced = true;
      writeFileSync(paths.state, JSON.stringify(state));
      log(`first sync (uploads ${files} files): ${fmt(first)} = ${Math.round(files / (first.wallMs / 1000))} files/s`);
    } else if (state.firstSync) log(`first sync (when the workspace was made): ${fmt(state.firstSync)} = ${Math.round(state.files / (state.firstSync.wallMs / 1000))} files/s`);
    // A settling run: whatever the last measurement left is synced before anything is timed.
    await cli(paths, ['sync', '--json']);

    for (let i = 0; i < runs; i++) {
      if (only.has('sync')) add('sync (CLI, nothing changed)', await cli(paths, ['sync', '--json'], { profile: values.profile && `sync-${i}` }));
      if (only.has('engine')) add('sync (engine, in process)', await inProcess(paths, 'engine'));
      if (only.has('pending')) add('pending check (in process)', await inProcess(paths, 'pending'));
      if (only.has('accounting')) add('full accounting (in process)', await inProcess(paths, 'accounting'));
      if (only.has('dry-run')) add('disconnect --dry-run (CLI)', await cli(paths, ['disconnect', '--dry-run', '--json'], { profile: values.profile && `dry-run-${i}` }));
      if (only.has('disconnect')) {
        save(paths);
        add('disconnect, nothing pending (CLI)', await cli(paths, ['disconnect', '--json'], { profile: values.profile && `disconnect-${i}` }));
        await restore(paths, url);
      }
      if (only.has('pending-disconnect') && pendingFiles > 0) {
        save(paths);
        const dir = `pending-${Date.now()}`;
        makeFiles(paths.folder, dir, pendingFiles, 10);
        const s = await cli(paths, ['disconnect', '--json'], { profile: values.profile && `pending-disconnect-${i}` });
        add(`disconnect, ${pendingFiles} pending (CLI)`, s);
        await restore(paths, url);
        // The saved index does not know the uploaded files: the next sync adopts them (same names, same content); then they go.
        const adopt = await cli(paths, ['sync', '--json']);
        rmSync(join(paths.folder, dir), { recursive: true, force: true });
        const gone = await cli(paths, ['sync', '--json']);
        log(`  (clean-up: adopting sync ${fmt(adopt)}, deleting sync ${fmt(gone)})`);
        const left = readdirSync(paths.folder).filter((n) => !n.startsWith('.coffer-'));
        if (left.length !== FOLDERS) log(`  warning: the folder holds ${left.length} top-level items after the clean-up, not ${FOLDERS}: ${left.filter((n) => !/^d\d{3}$/.test(n)).join(', ')}`);
      }
    }
  } finally {
    await server.kill();
  }
  process.stdout.write(`\n${files} files (4 KiB, ${FOLDERS} folders), ${runs} run(s); median [all runs] wall ms / CPU ms\n`);
  for (const [name, list] of results) {
    const med = (k: 'wallMs' | 'cpuMs') => median(list.map((s) => s[k]));
    process.stdout.write(`${name.padEnd(40)} ${String(Math.round(med('wallMs'))).padStart(7)} / ${String(Math.round(med('cpuMs'))).padStart(7)}   [${list.map((s) => `${Math.round(s.wallMs)}/${Math.round(s.cpuMs)}`).join(', ')}]\n`);
  }
  if (values.profile && existsSync(paths.prof)) {
    for (const f of readdirSync(paths.prof).filter((f) => f.endsWith('.cpuprofile')).sort()) printTop(join(paths.prof, f), 25);
  }
}

type Paths = { ws: string; data: string; home: string; folder: string; prof: string; saved: string; state: string };

/** Runs `coffer <args>` to completion: wall time, CPU time of the process. Throws unless it exits 0. */
async function cli(paths: Paths, args: string[], opts: { timeoutMs?: number; profile?: string | false } = {}): Promise<Sample> {
  const usage = join(paths.ws, 'usage.jsonl');
  rmSync(usage, { force: true });
  const prof = opts.profile ? ` --cpu-prof --cpu-prof-dir=${paths.prof} --cpu-prof-name=${opts.profile}.cpuprofile` : '';
  const t0 = performance.now();
  // bin/coffer, as people run it (it sets UV_USE_IO_URING=1 and the compile cache); the preload and the profiler through NODE_OPTIONS.
  const child = spawn(COFFER, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    // Credentials in a file: the OS keyring (a helper process per access) is not what is measured here.
    env: { PATH: process.env.PATH, HOME: process.env.HOME, COFFER_CLIENT_HOME: paths.home, COFFER_PERF_USAGE: usage, COFFER_CREDENTIAL_STORE: 'file', NODE_OPTIONS: `--import=${USAGE}${prof}` },
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { out += d; });
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 600_000);
  const code = await new Promise<number | null>((res) => child.on('close', res));
  clearTimeout(timer);
  const wallMs = performance.now() - t0;
  if (code !== 0) throw new Error(`coffer ${args.join(' ')} exited ${code}:\n${out}`);
  const u = existsSync(usage) ? JSON.parse(readFileSync(usage, 'utf8').trim().split('\n').pop()!) as { userMs: number; systemMs: number } : { userMs: NaN, systemMs: NaN };
  return { wallMs, cpuMs: u.userMs + u.systemMs };
}

/** The engine or the pending check in this process, timed alone (opening the account is not counted). */
async function inProcess(paths: Paths, what: 'engine' | 'pending' | 'accounting'): Promise<Sample> {
  const { AccountStore } = await import('../src/accounts/account-store.ts');
  const { openAccount } = await import('../src/accounts/open-account.ts');
  const o = await openAccount(new AccountStore(paths.home), ACCOUNT);
  try {
    const run = async () => {
      if (what === 'engine') {
        const { syncOnce } = await import('../src/sync/sync-engine.ts');
        const r = await syncOnce(o.syncApi, o.index, { folder: o.account.folder, deviceName: o.account.deviceName });
        if (r.rounds !== 0) throw new Error(`the no-change sync did something: ${JSON.stringify(r)}`);
      } else {
        const lp = await import('../src/signout/local-pending.ts');
        const rootId = o.index.getMeta('root_id')!;
        // The baseline tree (before issue 7) has no pendingLocal: its disconnect used accountLocal.
        const pending = what === 'pending' && 'pendingLocal' in lp ? await lp.pendingLocal(o.index, o.account.folder, rootId) : (await lp.accountLocal(o.index, o.account.folder, rootId)).pending;
        if (pending.length) throw new Error(`pending in a synced folder: ${JSON.stringify(pending.slice(0, 5))}`);
      }
    };
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await run();
    const wallMs = performance.now() - t0;
    const c = process.cpuUsage(c0);
    return { wallMs, cpuMs: (c.user + c.system) / 1000 };
  } finally {
    o.close();
  }
}

/** Keeps the account's state (home and the folder's marker) to put back after a disconnect. */
function save(paths: Paths): void {
  rmSync(paths.saved, { recursive: true, force: true });
  cpSync(paths.home, join(paths.saved, 'home'), { recursive: true });
  cpSync(join(paths.folder, '.coffer-root'), join(paths.saved, 'marker'));
}

/** Puts the saved state back and signs in again (the disconnect revoked the session): the same account, the same index. */
async function restore(paths: Paths, url: string): Promise<void> {
  rmSync(paths.home, { recursive: true, force: true });
  cpSync(join(paths.saved, 'home'), paths.home, { recursive: true });
  cpSync(join(paths.saved, 'marker'), join(paths.folder, '.coffer-root'));
  await cli(paths, ['login', url, '--folder', paths.folder, '--username', USER, '--password', PASSWORD, '--name', ACCOUNT]);
}

/** `count` files of FILE_BYTES random bytes under `rel`, spread over `folders` folders. */
function makeFiles(root: string, rel: string, count: number, folders = FOLDERS): void {
  const per = Math.ceil(count / folders);
  const pool = randomBytes(1 << 20);
  for (let i = 0; i < count; i++) {
    const dir = join(root, rel, `d${String(Math.floor(i / per)).padStart(3, '0')}`);
    if (i % per === 0) mkdirSync(dir, { recursive: true });
    const data = Buffer.alloc(FILE_BYTES);
    pool.copy(data, 0, (i * 4099) % (pool.length - FILE_BYTES));
    data.writeUInt32LE(i, 0);
    data.writeUInt32LE(Date.now() % 0xffffffff, 4);
    writeFileSync(join(dir, `f${String(i).padStart(6, '0')}.bin`), data);
  }
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
    s.on('error', rej);
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function fmt(s: Sample): string {
  return `${Math.round(s.wallMs)} ms wall, ${Math.round(s.cpuMs)} ms CPU`;
}

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** The functions with the most self time in a V8 .cpuprofile, and the same summed by file. */
function printTop(file: string, n: number): void {
  type P = { nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount: number }[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number };
  const p = JSON.parse(readFileSync(file, 'utf8')) as P;
  const byNode = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) byNode.set(p.samples[i], (byNode.get(p.samples[i]) ?? 0) + (p.timeDeltas[i] ?? 0));
  const fn = new Map<string, number>();
  const byFile = new Map<string, number>();
  for (const node of p.nodes) {
    const us = byNode.get(node.id) ?? 0;
    if (!us) continue;
    const url = node.callFrame.url.replace(/^file:\/\/.*?\/(packages|node_modules)\//, '$1/');
    const key = `${node.callFrame.functionName || '(anonymous)'} ${url}:${node.callFrame.lineNumber + 1}`;
    fn.set(key, (fn.get(key) ?? 0) + us);
    const f = url || `(${node.callFrame.functionName})`;
    byFile.set(f, (byFile.get(f) ?? 0) + us);
  }
  const total = (p.endTime - p.startTime) / 1000;
  process.stdout.write(`\n== ${file}: ${Math.round(total)} ms profiled\n`);
  for (const [k, us] of [...fn].sort((a, b) => b[1] - a[1]).slice(0, n)) process.stdout.write(`${(us / 1000).toFixed(1).padStart(8)} ms  ${k}\n`);
  process.stdout.write('  by file:\n');
  for (const [k, us] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, 15)) process.stdout.write(`${(us / 1000).toFixed(1).padStart(8)} ms  ${k}\n`);
}
