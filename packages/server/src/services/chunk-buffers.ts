/**
 * Reused memory for upload chunks. Every fresh ArrayBuffer counts as external
 * memory to V8, and at a GiB per second that triggers a full mark-compact
 * every few dozen MiB; recycling chunk buffers removes half of that churn
 * (the other half is Node's socket buffers, which we do not own).
 *
 * A chunk is a view on a power-of-two buffer; give it back with `release`
 * once nothing reads it any more (its blob write finished, or it was a duplicate).
 */
const MIN_CLASS = 1 << 18;
/**
 * Enough for the chunks ChunkWriter keeps in flight (4 × up to 1 MiB, rounded up to
 * their size classes) and a few on their way back; more only holds memory.
 */
const POOL_CAP_BYTES = 8 << 20;
const pools = new Map<number, ArrayBuffer[]>();
let pooledBytes = 0;

function sizeClass(size: number): number {
  let c = MIN_CLASS;
  while (c < size) c *= 2;
  return c;
}

export function takeChunkBuffer(size: number): Uint8Array {
  const cls = sizeClass(size);
  const ab = pools.get(cls)?.pop();
  if (ab) pooledBytes -= cls;
  return new Uint8Array(ab ?? new ArrayBuffer(cls), 0, size);
}

export function releaseChunkBuffer(view: Uint8Array): void {
  const ab = view.buffer;
  if (!(ab instanceof ArrayBuffer) || ab.byteLength !== sizeClass(ab.byteLength) || ab.byteLength < MIN_CLASS) return;
  if (pooledBytes + ab.byteLength > POOL_CAP_BYTES) return;
  let list = pools.get(ab.byteLength);
  if (!list) pools.set(ab.byteLength, (list = []));
  list.push(ab);
  pooledBytes += ab.byteLength;
}
