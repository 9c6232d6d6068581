/**
 * `npm test`: every test file of every package through node's test runner,
 * then one plain `N passed, N failed, N skipped` line from the runner's own
 * counts (CI reads it). Extra arguments narrow the run: `npm test -- files…`.
 *
 * Two phases: first every file but the simulation, two files at a time;
 * then the simulation alone. The simulation keeps a CPU busy for ~100 s, and
 * beside it the multi-process tests (argon2 sign-ins, throttle races, gc
 * under load) ran starved enough to time out.
 */
import { spawn } from 'node:child_process';
import { globSync } from 'node:fs';
import { ensureSystemPackages } from './system-packages.ts';

const DEFAULT_PATTERNS = ['packages/*/src/**/*.test.ts', 'packages/*/test/**/*.test.ts'];
/** Files that run after the others, on their own. */
const ALONE = /\/test\/simulation\//;

const args = process.argv.slice(2);
const phases: { files: string[]; concurrency: number }[] = [];
if (args.length) {
  phases.push({ files: args, concurrency: 2 });
} else {
  const files = [...new Set(DEFAULT_PATTERNS.flatMap((p) => globSync(p)))].sort();
  phases.push({ files: files.filter((f) => !ALONE.test(f)), concurrency: 2 });
  phases.push({ files: files.filter((f) => ALONE.test(f)), concurrency: 1 });
}

ensureSystemPackages((msg) => process.stdout.write(`${msg}\n`));

interface Counts { pass: number; fail: number; cancelled: number; skipped: number; code: number | null; reported: boolean }

function runPhase(files: string[], concurrency: number): Promise<Counts> {
  const child = spawn(process.execPath, ['--test', '--test-reporter=spec', `--test-concurrency=${concurrency}`, '--test-timeout=300000', ...files], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, NODE_ENV: 'test' },
  });
  // The runner's own summary lines (`ℹ pass N` …); the failure details that follow them can be long.
  const summary = new Map<string, number>();
  let partial = '';
  child.stdout.on('data', (d: Buffer) => {
    process.stdout.write(d);
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      const m = /^ℹ (pass|fail|cancelled|skipped) (\d+)$/.exec(line);
      if (m) summary.set(m[1], Number(m[2]));
    }
  });
  return new Promise((resolve) => child.on('close', (code) => resolve({
    pass: summary.get('pass') ?? 0, fail: summary.get('fail') ?? 0, cancelled: summary.get('cancelled') ?? 0,
    skipped: summary.get('skipped') ?? 0, code, reported: summary.has('pass') && summary.has('fail'),
  })));
}

let passed = 0;
let failed = 0;
let skipped = 0;
let exitCode = 0;
for (const phase of phases) {
  if (phase.files.length === 0) continue;
  const c = await runPhase(phase.files, phase.concurrency);
  if (!c.reported) {
    process.stdout.write(`\n(the test runner exited with ${c.code} before reporting its counts)\n`);
    failed += 1;
    exitCode = c.code || 1;
    continue;
  }
  passed += c.pass;
  failed += c.fail + c.cancelled; // a test that timed out is cancelled: it did not pass
  skipped += c.skipped;
  if (c.code !== 0) exitCode = c.code ?? 1;
}
process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped} skipped\n`);
process.exit(exitCode);
