/**
 * Reads files once so they sit in the page cache before a timed row.
 *
 * Why: this machine kind runs a DAMON "pageout" scheme that evicts page-cache
 * pages left untouched for about a minute (see
 * /sys/kernel/mm/damon/admin/kdamonds/0). Without warming, whichever server
 * happens to run later, or more slowly, reads from disk instead of memory, and
 * the row measures the disk and the order of the rows, not the server.
 */
import { closeSync, lstatSync, openSync, readSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const BLOCK = 1024 * 1024;
const MAX_FILES = 200_000;

/** Reads every regular file at or under `paths` (bounded in count); returns the bytes read. */
export function warmPageCache(paths: readonly string[]): number {
  const buf = Buffer.allocUnsafe(BLOCK);
  let bytes = 0;
  let files = 0;
  const stack = [...paths];
  while (stack.length && files < MAX_FILES) {
    const p = stack.pop()!;
    let st;
    try {
      st = lstatSync(p);
    } catch {
      continue; // vanished (a server's temp file): nothing to warm
    }
    if (st.isDirectory()) {
      for (const name of readdirSync(p)) stack.push(join(p, name));
    } else if (st.isFile()) {
      files++;
      let fd: number;
      try {
        fd = openSync(p, 'r');
      } catch {
        continue;
      }
      try {
        for (let n = readSync(fd, buf); n > 0; n = readSync(fd, buf)) bytes += n;
      } finally {
        closeSync(fd);
      }
    }
  }
  return bytes;
}
