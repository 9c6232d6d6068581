/**
 * Frees dead request-body buffers early. Node allocates a fresh ArrayBuffer
 * for every 64 KiB a socket reads; their JS wrappers are tiny, so V8's young
 * generation fills too slowly to collect them, and the backing memory piles
 * up (tens of MiB) until an external-memory mark-compact of the whole heap.
 * A young-generation scavenge every few dozen MiB of upload frees them for
 * a fraction of a millisecond and keeps an upload's memory flat.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Gc = (options?: { type?: 'minor' | 'major'; execution?: 'sync' | 'async' }) => void;

let gc: Gc | null | undefined;

function exposedGc(): Gc | null {
  if (gc === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      gc = runInNewContext('gc') as Gc;
    } catch {
      gc = null; // not available: V8's own heuristics still free the memory, later
    }
  }
  return gc;
}

export function collectYoungGarbage(): void {
  exposedGc()?.({ type: 'minor' });
}
