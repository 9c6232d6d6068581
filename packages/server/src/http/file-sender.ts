/**
 * Sends byte ranges of local files to an HTTP response through a small,
 * process-wide pool of reused 1 MiB buffers. Why not fs streams: every read
 * would allocate a fresh buffer, and at a GiB per second that external memory
 * makes V8 run a full mark-compact every few dozen MiB. A buffer returns to
 * the pool only when the socket's write callback says the kernel has the bytes.
 *
 * Reads run ahead of the socket, across files: a file is one chunk (128 KiB
 * to 1 MiB), so a 1 GiB download reads thousands of them, and opening,
 * reading and closing them one after the other left the socket waiting on
 * every round trip (1 GiB took 1.06 s here; 0.45 s from nginx). Files in
 * the page cache are read with blocking calls, as nginx does; see readFromCache.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import type { ServerResponse } from 'node:http';
import type { FileRange } from '../services/download.service.ts';

const BUFFER_SIZE = 1 << 20;
/** Buffers one response holds at once, read or being written: bounds its memory to this × 1 MiB. */
const BUFFERS_PER_RESPONSE = 6;
/** A blocking fill of one buffer that takes longer than this was not served from the page cache… */
const FILL_BLOCKING_LIMIT_MS = 2;
/** …and this many such fills in a row switch a response to thread-pool reads for good. */
const SLOW_FILLS_TO_SWITCH = 2;
/** Reads in flight ahead of the socket. */
const READ_AHEAD = 3;
const POOL_CAP = 64;
const pool: Buffer[] = [];

export type { FileRange };

function takeBuffer(): Buffer {
  return pool.pop() ?? Buffer.allocUnsafeSlow(BUFFER_SIZE);
}
function giveBuffer(b: Buffer): void {
  if (pool.length < POOL_CAP) pool.push(b);
}

/** One buffer being filled: `read` resolves with the bytes it holds once every read into it is done. */
interface Piece { buf: Buffer; read: Promise<number> }

/**
 * Writes the ranges in order; resolves when all bytes were handed to the socket, rejects if the client went away or a read failed.
 * `blocking: false` never reads with blocking calls (tests use it to reach that path).
 */
export async function writeFileRanges(res: ServerResponse, ranges: FileRange[], opts: { blocking?: boolean } = {}): Promise<void> {
  let writing = 0;
  let wake: (() => void) | null = null;
  let writeError: Error | null = null;
  const settle = () => { const w = wake; wake = null; w?.(); };
  const onClose = () => { if (!res.writableFinished) writeError ??= new Error('client closed the connection'); settle(); };
  res.on('close', onClose);

  // Reads are issued in order: range by range, each in pieces of at most one buffer. A file is
  // closed once every read of its range has been issued and has settled.
  interface OpenFile { fh: Promise<FileHandle>; pending: number; issuedAll: boolean; closed: boolean }
  const files: OpenFile[] = [];
  const maybeClose = (f: OpenFile) => {
    if (!f.issuedAll || f.pending > 0 || f.closed) return;
    f.closed = true;
    f.fh.then((fh) => fh.close()).catch(() => {});
  };
  let rangeNo = 0;
  let pos = ranges[0]?.start ?? 0;
  /** The next buffer's worth of the ranges, in order: as many consecutive ranges as fit (one socket write per MiB, however small the files). */
  /** `len` bytes at `at` of one range's file (or bytes), into the buffer at `into`. */
  interface Segment { path: string; bytes?: Uint8Array; at: number; len: number; into: number; endsRange: boolean }
  const nextSegments = (): Segment[] => {
    const out: Segment[] = [];
    let off = 0;
    while (off < BUFFER_SIZE && rangeNo < ranges.length) {
      const r = ranges[rangeNo];
      const len = Math.min(BUFFER_SIZE - off, r.end - pos + 1);
      out.push({ path: r.path, bytes: r.bytes, at: pos, len, into: off, endsRange: pos + len > r.end });
      off += len;
      pos += len;
      if (pos > r.end) {
        rangeNo++;
        pos = ranges[rangeNo]?.start ?? 0;
      }
    }
    return out;
  };
  const shorter = (path: string) => new Error(`${path} is shorter than recorded`);
  /** A segment held in memory: copied, no file involved. */
  const copyBytes = (seg: Segment, buf: Buffer): void => {
    if (seg.at + seg.len > seg.bytes!.byteLength) throw shorter(seg.path);
    buf.set(seg.bytes!.subarray(seg.at, seg.at + seg.len), seg.into);
  };
  let current: OpenFile | null = null;
  const reading: Piece[] = [];
  /** As readFromCache, through the thread pool: a file's open, reads and close never block the event loop. */
  const readFromDisk = (): boolean => {
    const segments = nextSegments();
    if (!segments.length) return false;
    const buf = takeBuffer();
    const reads = segments.map((seg) => {
      if (seg.bytes) return Promise.resolve().then(() => copyBytes(seg, buf));
      if (!current) {
        const fh = open(seg.path, 'r');
        fh.catch(() => {}); // reported through its reads
        current = { fh, pending: 0, issuedAll: false, closed: false };
        files.push(current);
      }
      const f = current;
      const read = f.fh.then((fh) => fh.read(buf, seg.into, seg.len, seg.at)).then((x) => { if (x.bytesRead !== seg.len) throw shorter(seg.path); });
      f.pending++;
      const done = () => { f.pending--; maybeClose(f); };
      read.then(done, done);
      if (seg.endsRange) {
        f.issuedAll = true;
        current = null;
      }
      return read;
    });
    const read = Promise.all(reads).then(() => segments.reduce((n, seg) => n + seg.len, 0));
    read.catch(() => {}); // reported when its turn comes
    reading.push({ buf, read });
    return true;
  };

  /**
   * Fills one buffer with blocking reads: what nginx does by default, and here 20% faster than going
   * through the thread pool three times per file. Only while the files come from the page cache:
   * two fills in a row that take longer than FILL_BLOCKING_LIMIT_MS (the disk was read) switch this
   * response to readFromDisk for good, so a cold download never holds up the other requests for long.
   */
  const readFromCache = (): boolean => {
    const t0 = performance.now();
    const segments = nextSegments();
    if (!segments.length) return false;
    const buf = takeBuffer();
    let read: Promise<number>;
    try {
      for (const seg of segments) {
        if (seg.bytes) {
          copyBytes(seg, buf);
          continue;
        }
        // Consecutive chunks are mostly in one pack: its file stays open from one read to the next.
        if (seg.path !== cached.path) {
          closeCached();
          cached.fd = openSync(seg.path, 'r');
          cached.path = seg.path;
        }
        if (readSync(cached.fd, buf, seg.into, seg.len, seg.at) !== seg.len) throw shorter(seg.path);
      }
      read = Promise.resolve(segments.reduce((n, seg) => n + seg.len, 0));
    } catch (e) {
      read = Promise.reject(e as Error);
      read.catch(() => {}); // reported when its turn comes
    }
    // Two slow fills in a row: the files are coming from the disk. One alone is more often a hiccup (a page
    // fault, the VM descheduled) than a cold file, and switching on it slowed whole downloads by half.
    if (performance.now() - t0 > FILL_BLOCKING_LIMIT_MS) {
      if (++slowFillsInARow >= SLOW_FILLS_TO_SWITCH) startRead = readFromDisk;
    } else {
      slowFillsInARow = 0;
    }
    reading.push({ buf, read });
    return true;
  };

  /** The file readFromCache read last, still open (fd -1: none). */
  const cached = { path: '', fd: -1 };
  const closeCached = () => {
    if (cached.fd >= 0) closeSync(cached.fd);
    cached.fd = -1;
    cached.path = '';
  };
  let startRead = opts.blocking === false ? readFromDisk : readFromCache;
  let slowFillsInARow = 0;

  try {
    for (;;) {
      while (reading.length < READ_AHEAD && reading.length + writing < BUFFERS_PER_RESPONSE && startRead()) { /* issue */ }
      const piece = reading.shift();
      if (!piece) break;
      let bytesRead: number;
      try {
        bytesRead = await piece.read;
      } catch (e) {
        giveBuffer(piece.buf);
        throw e;
      }
      if (writeError) { giveBuffer(piece.buf); throw writeError; }
      writing++;
      res.write(piece.buf.subarray(0, bytesRead), (err) => {
        writing--;
        giveBuffer(piece.buf);
        if (err) writeError ??= err;
        settle();
      });
      while (writing + reading.length >= BUFFERS_PER_RESPONSE && !writeError) await new Promise<void>((resolve) => { wake = resolve; });
      if (writeError) throw writeError;
    }
    while (writing > 0 && !writeError) await new Promise<void>((resolve) => { wake = resolve; });
    if (writeError) throw writeError;
  } finally {
    closeCached();
    res.off('close', onClose);
    // Reads still in flight (a failed or abandoned download) give their buffers back once done; every file is closed.
    for (const p of reading) p.read.then(() => giveBuffer(p.buf), () => giveBuffer(p.buf));
    for (const f of files) {
      f.issuedAll = true;
      maybeClose(f);
    }
  }
}
