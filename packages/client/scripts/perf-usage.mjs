/**
 * Preloaded into a measured `coffer` process by perf-sync.ts (`node --import`):
 * at exit, appends the process's CPU time (user, system, all threads) and its
 * peak memory as one JSON line to $COFFER_PERF_USAGE. Plain JavaScript: a
 * TypeScript preload would be type-stripped before the CLI turns on Node's
 * compile cache, adding a cost real runs do not have.
 */
import { appendFileSync } from 'node:fs';

const file = process.env.COFFER_PERF_USAGE;
if (file) {
  process.on('exit', () => {
    const u = process.resourceUsage();
    appendFileSync(file, JSON.stringify({ userMs: u.userCPUTime / 1000, systemMs: u.systemCPUTime / 1000, maxRssMb: u.maxRSS / 1024 }) + '\n');
  });
}
