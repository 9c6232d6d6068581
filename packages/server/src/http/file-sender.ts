/**
 * Sends byte ranges of local files to an HTTP response through a small,
 * process-wide pool of reused 1 MiB buffers. Why not fs streams: every read
 * would allocate a fresh buffer, and at a GiB per second that external memory
 * makes V8 run a full mark-compact every few dozen MiB. A buffer returns to
 * the pool only when the socket's write callback says the kernel has the bytes.
 */
import { open } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';

const BUFFER_SIZE = 1 << 20;
const IN_FLIGHT_PER_RESPONSE = 4;
const POOL_CAP = 64;
const pool: Buffer[] = [];

export interface FileRange { path: string; start: number; end: number }

function takeBuffer(): Buffer {
  return pool.pop() ?? Buffer.allocUnsafeSlow(BUFFER_SIZE);
}
function giveBuffer(b: Buffer): void {
  if (pool.length < POOL_CAP) pool.push(b);
}

/** Writes the ranges in order; resolves when all bytes were handed to the socket, rejects if the client went away or a read failed. */
export async function writeFileRanges(res: ServerResponse, ranges: FileRange[]): Promise<void> {
  let inFlight = 0;
  let wake: (() => void) | null = null;
  let writeError: Error | null = null;
  const settle = () => { const w = wake; wake = null; w?.(); };
  const onClose = () => { if (!res.writableFinished) writeError ??= new Error('client closed the connection'); settle(); };
  res.on('close', onClose);
  try {
    for (const r of ranges) {
      const fh = await open(r.path, 'r');
      try {
        for (let pos = r.start; pos <= r.end;) {
          while (inFlight >= IN_FLIGHT_PER_RESPONSE && !writeError) await new Promise<void>((resolve) => { wake = resolve; });
          if (writeError) throw writeError;
          const buf = takeBuffer();
          const { bytesRead } = await fh.read(buf, 0, Math.min(BUFFER_SIZE, r.end - pos + 1), pos);
          if (bytesRead === 0) { giveBuffer(buf); throw new Error(`${r.path} is shorter than recorded`); }
          pos += bytesRead;
          inFlight++;
          res.write(buf.subarray(0, bytesRead), (err) => {
            inFlight--;
            giveBuffer(buf);
            if (err) writeError ??= err;
            settle();
          });
        }
      } finally {
        await fh.close();
      }
    }
    while (inFlight > 0 && !writeError) await new Promise<void>((resolve) => { wake = resolve; });
    if (writeError) throw writeError;
  } finally {
    res.off('close', onClose);
  }
}
