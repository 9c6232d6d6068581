/**
 * Where the simulation keeps its files: on a RAM disk when the machine has
 * one (/dev/shm). The server's database and blobs, the clients' indexes and
 * folders all sync to disk at every commit; on a RAM disk that costs
 * nothing, and a simulated crash is a process crash, not a power cut, so
 * nothing the simulation checks depends on the disk. Sets TMPDIR for this
 * process only (the test server and the clients make their folders there).
 */
import { accessSync, constants, mkdtempSync } from 'node:fs';
import { join } from 'node:path';

export function useRamDisk(): string | null {
  try {
    accessSync('/dev/shm', constants.W_OK);
    const dir = mkdtempSync(join('/dev/shm', 'coffer-sim-'));
    process.env.TMPDIR = dir;
    return dir;
  } catch {
    return null;
  }
}
