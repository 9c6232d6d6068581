/**
 * A real S3 endpoint for tests: s3rver in-process on loopback, one fresh
 * temp dir per server. s3rver is CommonJS without type declarations, so it is
 * loaded through createRequire and given the small type it is used with.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}
type S3rverCtor = new (opts: {
  address: string;
  port: number;
  silent: boolean;
  directory: string;
  configureBuckets: { name: string }[];
}) => S3rverInstance;

const require = createRequire(import.meta.url);
const S3rver = require('s3rver') as S3rverCtor;

/**
 * s3rver encrypts ListObjectsV2 continuation tokens with single DES, which
 * OpenSSL 3 (Node >= 17) no longer offers, so every truncated V2 listing fails
 * with InternalError. Triple DES with the 8-byte key repeated three times is
 * single DES bit for bit, and OpenSSL 3 still has it: map 'des' onto it. No
 * other code asks for 'des' (it would throw), so nothing else changes.
 */
function letS3rverUseDes(): void {
  type CipherFactory = ((alg: unknown, key: unknown, ...rest: unknown[]) => unknown) & { desPatched?: true };
  const crypto = require('node:crypto') as Record<'createCipheriv' | 'createDecipheriv', CipherFactory>;
  for (const name of ['createCipheriv', 'createDecipheriv'] as const) {
    const original = crypto[name];
    if (original.desPatched) continue;
    const patched: CipherFactory = (alg, key, ...rest) =>
      alg === 'des' && Buffer.isBuffer(key) && key.length === 8
        ? original('des-ede3-cbc', Buffer.concat([key, key, key]), ...rest)
        : original(alg, key, ...rest);
    patched.desPatched = true;
    crypto[name] = patched;
  }
}

/**
 * s3rver's DeleteObject removes the key's folders once they are empty, while a
 * PutObject of a key beside it may sit between creating those folders and
 * opening its file: the open then fails with ENOENT on a stream nobody listens
 * to, the PUT is never answered, and the uploader waits forever. Real S3 has
 * no folders. Deleting only the object's files (empty folders stay, and hold
 * nothing that lists) closes the race; the conformance case 'puts racing
 * deletes in one folder' hangs without this.
 */
function keepS3rverFolders(): void {
  type Store = { prototype: { deleteObject(bucket: string, key: string): Promise<void>; getResourcePath(bucket: string, key: string, resource: string): string; keepsFolders?: true } };
  const { prototype } = require('s3rver/lib/stores/filesystem') as Store;
  if (prototype.keepsFolders) return;
  const { unlink } = require('node:fs/promises') as typeof import('node:fs/promises');
  prototype.deleteObject = async function deleteObject(bucket, key) {
    await Promise.all(['object', 'object.md5', 'metadata.json'].map((resource) =>
      unlink(this.getResourcePath(bucket, key, resource)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      })));
  };
  prototype.keepsFolders = true;
}

export interface S3TestServer {
  endpoint: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  stop(): Promise<void>;
}

export async function startS3Server(): Promise<S3TestServer> {
  letS3rverUseDes();
  keepS3rverFolders();
  const directory = await mkdtemp(join(tmpdir(), 'coffer-s3rver-'));
  // s3rver rejects bucket names shorter than 3 characters.
  const bucket = 'coffer-test';
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0, // the OS picks a free port; run() reports it
    silent: true,
    directory,
    configureBuckets: [{ name: bucket }],
  });
  try {
    const { port } = await server.run();
    return {
      endpoint: `http://127.0.0.1:${port}`,
      bucket,
      region: 'us-east-1',
      // s3rver's fixed built-in test credentials, not a secret.
      accessKeyId: 'S3RVER',
      secretAccessKey: 'S3RVER',
      async stop() {
        await server.close();
        await rm(directory, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(directory, { recursive: true, force: true });
    throw err;
  }
}
