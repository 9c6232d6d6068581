/**
 * `npm test`: every test file of every package through node's test runner,
 * then one plain `N passed, N failed, N skipped` line from the runner's own
 * counts (CI reads it). Extra arguments narrow the run: `npm test -- files…`.
 */
import { spawn } from 'node:child_process';

const patterns = process.argv.slice(2).length ? process.argv.slice(2) : [
  'packages/*/src/**/*.test.ts',
  'packages/*/test/**/*.test.ts',
];

const child = spawn(process.execPath, ['--test', '--test-reporter=spec', '--test-concurrency=2', '--test-timeout=300000', ...patterns], {
  stdio: ['ignore', 'pipe', 'inherit'],
  env: { ...process.env, NODE_ENV: 'test' },
});

let tail = '';
child.stdout.on('data', (d: Buffer) => {
  process.stdout.write(d);
  tail = (tail + d.toString()).slice(-4000);
});

child.on('close', (code) => {
  const count = (label: string) => Number(new RegExp(`ℹ ${label} (\\d+)`).exec(tail)?.[1] ?? NaN);
  const passed = count('pass');
  const failed = count('fail');
  const skipped = count('skipped');
  if (Number.isNaN(passed) || Number.isNaN(failed)) {
    process.stdout.write(`\n0 passed, 1 failed\n(the test runner exited with ${code} before reporting its counts)\n`);
    process.exit(code || 1);
  }
  process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped || 0} skipped\n`);
  process.exit(code ?? 1);
});
