/**
 * Preloaded into the `coffer` CLI by the client rows (NODE_OPTIONS=--import
 * this file, BENCH_CLI_TIMING=<json file>): splits the CLI's wall time into
 * start-up, engine and exit without touching the client's code.
 *
 * Node's fetch (undici) announces every request on the diagnostics channel
 * `undici:request:create`; the first one is the engine's first call to the
 * server (after Node start, module loading and opening the account: SQLite
 * index, credentials). At exit this writes, in milliseconds since the process
 * started (performance.now()), when that first request was made, when the last
 * response headers arrived, and when the `exit` event fired, plus the request
 * count and the process's time origin (epoch ms), so the parent can tell the
 * time before it (the bin/coffer shell wrapper, exec, Node's earliest
 * bootstrap) and after the exit event (tearing the process down). Nothing is printed; the file is written synchronously in the `exit`
 * handler, so it is there when the parent sees the process end.
 */
import { subscribe } from 'node:diagnostics_channel';
import { writeFileSync } from 'node:fs';

const file = process.env.BENCH_CLI_TIMING;
if (file) {
  let firstRequestMs = -1;
  let lastResponseMs = -1;
  let requests = 0;
  subscribe('undici:request:create', () => {
    requests++;
    if (firstRequestMs < 0) firstRequestMs = performance.now();
  });
  subscribe('undici:request:headers', () => {
    lastResponseMs = performance.now();
  });
  process.on('exit', (code) => {
    try {
      writeFileSync(file, JSON.stringify({ timeOrigin: performance.timeOrigin, firstRequestMs, lastResponseMs, exitMs: performance.now(), requests, code }));
    } catch {
      // the bench reports the missing file
    }
  });
}
