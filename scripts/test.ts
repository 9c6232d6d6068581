/**
 * `npm test`: every test file of every package through node's test runner,
 * then one plain `N passed, N failed, N skipped` line from the runner's own
 * counts (CI reads it). Extra arguments narrow the run: `npm test -- files…`.
 */
import { spawn } from 'node:child_process';
import { ensureSystemPackages } from './system-packages.ts';

const patterns = process.argv.slice(2).length ? process.argv.slice(2) : [
  'packages/*/src/**/*.test.ts',
  'packages/*/test/**/*.test.ts',
];

ensureSystemPackages((msg) => process.stdout.write(`${msg}\n`));

const child = spawn(process.execPath, ['--test', '--test-reporter=spec', '--test-concurrency=2', '--test-timeout=300000', ...patterns], {
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

child.on('close', (code) => {
  const count = (label: string) => summary.get(label) ?? NaN;
  const passed = count('pass');
  const failed = count('fail') + (summary.get('cancelled') ?? 0); // a test that timed out is cancelled: it did not pass
  const skipped = count('skipped');
  if (Number.isNaN(passed) || Number.isNaN(failed)) {
    process.stdout.write(`\n0 passed, 1 failed\n(the test runner exited with ${code} before reporting its counts)\n`);
    process.exit(code || 1);
  }
  process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped || 0} skipped\n`);
  process.exit(code ?? 1);
});
