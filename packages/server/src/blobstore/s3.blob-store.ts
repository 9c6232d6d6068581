/**
 * Blobs as objects in an S3-compatible bucket, optionally under a key prefix.
 *
 * A single PutObject is atomic on S3: the object appears whole or not at all,
 * so no temp names are needed. Each PUT carries a SHA-256 checksum that real
 * S3 verifies before storing (s3rver accepts the header and ignores it).
 */
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type BucketLocationConstraint,
  type GetObjectCommandOutput,
} from '@aws-sdk/client-s3';
import { Readable } from 'node:stream';
import {
  assertValidKey,
  assertValidPrefix,
  assertValidRange,
  BlobNotFoundError,
  type BlobStat,
  type BlobStore,
  type PutOptions,
} from './blob-store.ts';

export interface S3BlobStoreOptions {
  /** e.g. http://127.0.0.1:9000; omit for AWS itself. */
  endpoint?: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Folder inside the bucket, so several stores or apps can share one bucket. */
  prefix?: string;
  /** Parallel connections to the endpoint. */
  maxSockets?: number;
  /**
   * A request fails once its connection has carried nothing for this long (the SDK then retries it).
   * Without it, an endpoint that accepts a request and never answers holds the upload waiting on it forever.
   */
  idleTimeoutMs?: number;
  /** Keys per ListObjectsV2 page (S3 caps it at 1000); small values let tests reach paging. */
  listPageSize?: number;
}

/** Longer than the HTTP server's own idle timeout (120 s), so a slow reader of a download is cut there first. */
const DEFAULT_IDLE_TIMEOUT_MS = 150_000;

/** A multipart upload untouched this long belongs to a dead writer. */
const STALE_UPLOAD_MS = 24 * 60 * 60 * 1000;

export class S3BlobStore implements BlobStore {
  readonly kind = 's3';
  readonly capabilities = { localFiles: false } as const;
  readonly bucket: string;
  readonly prefix: string;
  readonly #region: string;
  readonly #listPageSize: number;
  readonly #client: S3Client;

  constructor(opts: S3BlobStoreOptions) {
    this.bucket = opts.bucket;
    this.#region = opts.region;
    const prefix = opts.prefix ?? '';
    this.prefix = prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
    if (this.prefix !== '') assertValidPrefix(this.prefix);
    this.#listPageSize = opts.listPageSize ?? 1000;
    const agent = { keepAlive: true, maxSockets: opts.maxSockets ?? 64 };
    this.#client = new S3Client({
      endpoint: opts.endpoint,
      region: opts.region,
      forcePathStyle: true,
      credentials: { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey },
      requestHandler: { httpAgent: agent, httpsAgent: agent, connectionTimeout: 10_000, socketTimeout: opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS },
    });
  }

  async init(): Promise<void> {
    try {
      await this.#client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return;
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
    try {
      await this.#client.send(
        new CreateBucketCommand({
          Bucket: this.bucket,
          // us-east-1 is S3's default location and rejects being named explicitly.
          CreateBucketConfiguration:
            this.#region === 'us-east-1'
              ? undefined
              : { LocationConstraint: this.#region as BucketLocationConstraint },
        }),
      );
    } catch (err) {
      if (nameOf(err) !== 'BucketAlreadyOwnedByYou') throw err;
    }
  }

  async put(key: string, data: Uint8Array, opts?: PutOptions): Promise<void> {
    try {
      await this.#client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.#objectKey(key),
          Body: data,
          ContentLength: data.byteLength,
          ChecksumAlgorithm: 'SHA256',
        }),
      );
    } finally {
      opts?.onWritten?.(); // a retry may read `data` again until the PUT settles
    }
  }

  async get(key: string, range?: { start: number; end: number }): Promise<Readable> {
    const Key = this.#objectKey(key);
    if (range) assertValidRange(range);
    let res: GetObjectCommandOutput;
    try {
      res = await this.#client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key,
          Range: range ? `bytes=${range.start}-${range.end}` : undefined,
        }),
      );
    } catch (err) {
      if (nameOf(err) === 'NoSuchKey' || (statusOf(err) === 404 && nameOf(err) !== 'NoSuchBucket')) {
        throw new BlobNotFoundError(key);
      }
      // A range starting past the end: the local store yields nothing there too.
      if (range && nameOf(err) === 'InvalidRange') return Readable.from([]);
      throw err;
    }
    const body = (res.Body as Readable | undefined) ?? Readable.from([]);
    if (!range) return body;
    // Never hand out bytes outside the range: s3rver answers `bytes=0-0` with the whole
    // object, and a server may ignore Range altogether (200 without Content-Range).
    const servedStart = Number(/^bytes (\d+)-/.exec(res.ContentRange ?? '')?.[1] ?? 0);
    const skip = range.start - servedStart;
    const take = range.end - range.start + 1;
    if (skip === 0 && (res.ContentLength ?? Infinity) <= take) return body;
    if (skip < 0) {
      body.destroy();
      throw new Error(`S3 served bytes from ${servedStart}, asked from ${range.start}`);
    }
    return Readable.from(sliceBytes(body, skip, take), { objectMode: false });
  }

  async stat(key: string): Promise<BlobStat | null> {
    try {
      const head = await this.#client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.#objectKey(key) }));
      return { size: head.ContentLength ?? 0 };
    } catch (err) {
      if (statusOf(err) === 404) return null;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    // S3 answers 204 for a missing key too, so this is idempotent without a check.
    await this.#client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.#objectKey(key) }));
  }

  async *list(prefix: string): AsyncIterable<{ key: string; size: number }> {
    assertValidPrefix(prefix);
    let token: string | undefined;
    do {
      const page = await this.#client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: this.prefix + prefix,
          ContinuationToken: token,
          MaxKeys: this.#listPageSize,
        }),
      );
      for (const obj of page.Contents ?? []) {
        if (obj.Key) yield { key: obj.Key.slice(this.prefix.length), size: obj.Size ?? 0 };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /**
   * put never leaves partial objects; only multipart uploads (none of ours today,
   * but other writers under this prefix) can linger, unseen and billed.
   */
  async cleanupAbandoned(): Promise<number> {
    let removed = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    try {
      for (;;) {
        const page = await this.#client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.bucket,
            Prefix: this.prefix || undefined,
            KeyMarker: keyMarker,
            UploadIdMarker: uploadIdMarker,
          }),
        );
        for (const u of page.Uploads ?? []) {
          if (!u.Key || !u.UploadId || !u.Initiated) continue;
          if (Date.now() - u.Initiated.getTime() < STALE_UPLOAD_MS) continue;
          await this.#client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: u.Key, UploadId: u.UploadId }));
          removed++;
        }
        if (!page.IsTruncated) return removed;
        keyMarker = page.NextKeyMarker;
        uploadIdMarker = page.NextUploadIdMarker;
      }
    } catch (err) {
      // s3rver and some S3-compatible servers do not implement ListMultipartUploads.
      const status = statusOf(err);
      if (nameOf(err) === 'NotImplemented' || status === 501 || status === 405) return removed;
      throw err;
    }
  }

  async close(): Promise<void> {
    this.#client.destroy();
  }

  #objectKey(key: string): string {
    assertValidKey(key);
    return this.prefix + key;
  }
}

async function* sliceBytes(src: Readable, skip: number, take: number): AsyncGenerator<Buffer> {
  let pos = 0;
  for await (const chunk of src as AsyncIterable<Buffer>) {
    const from = Math.max(0, skip - pos);
    const to = Math.min(chunk.length, skip + take - pos);
    pos += chunk.length;
    if (to > from) yield chunk.subarray(from, to);
    if (pos >= skip + take) break; // leaving the loop destroys src and frees the connection
  }
}

function nameOf(err: unknown): string | undefined {
  return (err as { name?: string } | null)?.name;
}

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
}
