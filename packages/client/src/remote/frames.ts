/**
 * The body of PUT /api/v1/uploads/{id}/chunks: frames of
 * [4-byte big-endian length][chunk bytes], each chunk 1..4 MiB, produced
 * one chunk at a time as the connection takes them (a pull stream with no
 * buffer of its own), so memory stays at about one chunk however many are
 * sent. A chunk the server would refuse is refused here, before sending.
 */
import { CHUNK_MAX } from '@coffer/protocol/chunker.ts';
import { ApiError } from './api-error.ts';

export type ChunkSource = AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

export interface FramedBody {
  stream: ReadableStream<Uint8Array>;
  /** Set when the source itself failed (a local read error, a file that changed): the real cause of a failed request. */
  sourceError: unknown;
  /** Chunks handed to the connection so far. */
  sent: number;
}

/** Frames `source`; `first` is a chunk already taken from `iterator`. `onPull` is called whenever the connection wants more. */
export function framedBody(iterator: AsyncIterator<Uint8Array> | Iterator<Uint8Array>, first: Uint8Array | undefined, onPull: () => void): FramedBody {
  let pending = first;
  const body: FramedBody = {
    sourceError: undefined,
    sent: 0,
    stream: new ReadableStream<Uint8Array>({
      async pull(controller) {
        onPull();
        let chunk: Uint8Array;
        try {
          if (pending !== undefined) {
            chunk = pending;
            pending = undefined;
          } else {
            const r = await iterator.next();
            if (r.done) {
              controller.close();
              return;
            }
            chunk = r.value;
          }
          checkChunk(chunk);
        } catch (e) {
          body.sourceError = e;
          controller.error(e);
          return;
        }
        const header = new Uint8Array(4);
        new DataView(header.buffer).setUint32(0, chunk.length);
        controller.enqueue(header);
        controller.enqueue(chunk);
        body.sent++;
      },
      async cancel() {
        await iterator.return?.();
      },
    }, { highWaterMark: 0 }),
  };
  return body;
}

export function checkChunk(chunk: Uint8Array): void {
  if (!(chunk instanceof Uint8Array) || chunk.length < 1 || chunk.length > CHUNK_MAX) {
    throw new ApiError({ code: 'CHUNK_TOO_LARGE', status: 0, message: `A chunk must be 1..${CHUNK_MAX} bytes; this one is ${chunk?.length}.` });
  }
}

export function iteratorOf(source: ChunkSource): AsyncIterator<Uint8Array> | Iterator<Uint8Array> {
  return Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
}
