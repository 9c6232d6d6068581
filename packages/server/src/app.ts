/**
 * The one place that picks implementations and wires them together:
 * SQLite or PostgreSQL, local disk or S3, the clock, the services, the HTTP
 * adapter. Everything else receives what it needs from here.
 */
import { join, resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Config } from './config/options.ts';
import { openDatabase, type MetadataDb } from './db/open-database.ts';
import type { BlobStore } from './blobstore/blob-store.ts';
import { LocalBlobStore } from './blobstore/local.blob-store.ts';
import { noPublisher, systemClock, type ChangePublisher, type Clock, type ServiceDeps } from './services/context.ts';
import { TreeService } from './services/tree.service.ts';
import { UploadService } from './services/upload.service.ts';
import { DownloadService } from './services/download.service.ts';
import { VersionService } from './services/version.service.ts';
import { UserService } from './services/user.service.ts';
import { TokenAuthService } from './services/token-auth.service.ts';
import { MaintenanceService } from './services/maintenance.service.ts';
import { StorageCheckService } from './services/storage-check.service.ts';
import { ChangeFeedService } from './services/change-feed.service.ts';
import { buildHttpServer } from './http/http-server.ts';
import { bearerToken, type Authenticator } from './http/auth-hook.ts';
import { uploadRepository } from './repositories/upload.repository.ts';

export interface Services {
  tree: TreeService;
  upload: UploadService;
  download: DownloadService;
  versions: VersionService;
  users: UserService;
  auth: TokenAuthService;
  maintenance: MaintenanceService;
  check: StorageCheckService;
  changes: ChangeFeedService;
}

export interface Coffer {
  config: Config;
  metadata: MetadataDb;
  blobs: BlobStore;
  services: Services;
  close(): Promise<void>;
}

/** S3 is loaded only when configured: the AWS SDK is large, and a bigger heap makes every GC slower. */
export async function createBlobStore(config: Config): Promise<BlobStore> {
  if (config.s3Endpoint) {
    const { S3BlobStore } = await import('./blobstore/s3.blob-store.ts');
    return new S3BlobStore({
      endpoint: config.s3Endpoint, bucket: config.s3Bucket, region: config.s3Region,
      accessKeyId: config.s3AccessKeyId ?? '', secretAccessKey: config.s3SecretAccessKey ?? '',
    });
  }
  return new LocalBlobStore(join(resolve(config.dataDir), 'blobs'));
}

/** Opens storage and builds the services; no network listener (the admin CLI uses this too). */
export async function createCoffer(config: Config, opts: { clock?: Clock; publisher?: ChangePublisher } = {}): Promise<Coffer> {
  const metadata = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: resolve(config.dataDir) });
  const blobs = await createBlobStore(config);
  try {
    await blobs.init();
  } catch (e) {
    await metadata.close();
    throw e;
  }
  const deps: ServiceDeps = { db: metadata.db, blobs, clock: opts.clock ?? systemClock, publisher: opts.publisher ?? noPublisher };
  const tree = new TreeService(deps);
  const services: Services = {
    tree,
    upload: new UploadService(deps, tree, { maxUploadBytes: config.maxUploadBytes, uploadLeaseMs: config.uploadLeaseSeconds * 1000 }),
    download: new DownloadService(deps),
    versions: new VersionService(deps, tree),
    users: new UserService(deps, config.defaultQuotaBytes),
    auth: new TokenAuthService(deps),
    maintenance: new MaintenanceService(deps, {
      trashRetentionDays: config.trashRetentionDays, versionRetentionDays: config.versionRetentionDays,
      maxVersionsPerFile: config.maxVersionsPerFile, gcGraceMs: config.gcGraceSeconds * 1000, changeRetentionDays: config.changeRetentionDays,
    }),
    check: new StorageCheckService(deps),
    changes: new ChangeFeedService(deps),
  };
  return {
    config, metadata, blobs, services,
    async close() {
      await blobs.close();
      await metadata.close();
    },
  };
}

export interface RunningServer {
  coffer: Coffer;
  http: FastifyInstance;
  url: string;
  close(): Promise<void>;
}

/**
 * Starts a server: storage, crash recovery, maintenance timer, HTTP listener.
 * `close` stops accepting, lets in-flight requests finish, then closes storage.
 */
export async function startServer(config: Config, opts: { clock?: Clock } = {}): Promise<RunningServer> {
  const coffer = await createCoffer(config, opts);
  const { services, metadata } = coffer;
  // A SQLite database has exactly one server process: uploads it did not finish died with the last one.
  if (metadata.dialect === 'sqlite') await uploadRepository.deleteAll(metadata.db);
  await coffer.blobs.cleanupAbandoned();

  const authenticator: Authenticator = {
    async authenticate(req) {
      const token = bearerToken(req);
      return token ? services.auth.authenticate(token) : null;
    },
  };
  const http = await buildHttpServer(services, authenticator, config);
  await http.listen({ port: config.port, host: config.host });
  const address = http.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;

  let running: Promise<unknown> | null = null;
  const runJobs = () => {
    running ??= services.maintenance.runAll()
      .then((r) => http.log.info({ maintenance: r }, 'maintenance done'))
      .catch((err) => http.log.error({ err }, 'maintenance failed'))
      .finally(() => { running = null; });
  };
  const timer = setInterval(runJobs, config.jobIntervalSeconds * 1000);
  timer.unref();
  const firstRun = setTimeout(runJobs, 5_000);
  firstRun.unref();

  return {
    coffer, http, url: `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`,
    async close() {
      clearInterval(timer);
      clearTimeout(firstRun);
      await http.close();
      await running;
      await coffer.close();
    },
  };
}
