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
import { noPublisher, systemClock, type ChangePublisher, type Clock, type RevocationPublisher, type ServiceDeps } from './services/context.ts';
import { TreeService } from './services/tree.service.ts';
import { UploadService } from './services/upload.service.ts';
import { DownloadService } from './services/download.service.ts';
import { VersionService } from './services/version.service.ts';
import { UserService } from './services/user.service.ts';
import { TokenAuthService } from './services/token-auth.service.ts';
import { MaintenanceService } from './services/maintenance.service.ts';
import { StorageCheckService } from './services/storage-check.service.ts';
import { ChangeFeedService } from './services/change-feed.service.ts';
import { UploadSessionService } from './services/upload-session.service.ts';
import { buildHttpServer } from './http/http-server.ts';
import { bearerToken, type Authenticator } from './http/auth-hook.ts';
import { uploadRepository } from './repositories/upload.repository.ts';
import { changeRepository } from './repositories/change.repository.ts';
import { isPostgresUrl } from './db/open-database.ts';
import { PushHub } from './push/push-hub.ts';
import { LocalBus, type PushBus } from './push/push-bus.ts';
import { PgNotifyBus } from './push/pg-notify.bus.ts';

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
  /** Upload sessions of the chunk protocol. */
  sessions: UploadSessionService;
  /** Open push channels of this process (empty in tools that serve no HTTP). */
  push: PushHub;
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
export async function createCoffer(config: Config, opts: { clock?: Clock; publisher?: ChangePublisher; revocations?: RevocationPublisher; push?: PushHub } = {}): Promise<Coffer> {
  const metadata = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: resolve(config.dataDir) });
  const blobs = await createBlobStore(config);
  try {
    await blobs.init();
  } catch (e) {
    await metadata.close();
    throw e;
  }
  const deps: ServiceDeps = { db: metadata.db, blobs, clock: opts.clock ?? systemClock, publisher: opts.publisher ?? noPublisher, revocations: opts.revocations };
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
    }, metadata.durable),
    check: new StorageCheckService(deps),
    changes: new ChangeFeedService(deps),
    sessions: new UploadSessionService(deps, tree, { maxUploadBytes: config.maxUploadBytes, uploadLeaseMs: config.uploadLeaseSeconds * 1000 }),
    push: opts.push ?? new PushHub(),
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
  // Push: one process on SQLite delivers in-process; on PostgreSQL every process LISTENs (docs/architecture.md).
  const push = new PushHub();
  const bus: PushBus = isPostgresUrl(config.databaseUrl) ? new PgNotifyBus({ databaseUrl: config.databaseUrl, hub: push }) : new LocalBus(push);
  const coffer = await createCoffer(config, { ...opts, publisher: bus, revocations: bus, push });
  const { services, metadata } = coffer;
  if (bus instanceof PgNotifyBus) {
    bus.resync = async (hub) => {
      for (const ownerId of hub.owners()) hub.changed(ownerId, (await changeRepository.position(metadata.db, ownerId)).last);
      for (const credentialKey of hub.credentialKeys()) if (!(await services.auth.isValid(credentialKey))) hub.revoked({ credentialKey });
    };
  }
  try {
    await bus.start();
  } catch (e) {
    await coffer.close();
    throw e;
  }
  // A SQLite database has exactly one server process: uploads it did not finish died with the last one.
  if (metadata.dialect === 'sqlite') await uploadRepository.deleteAll(metadata.db);
  await coffer.blobs.cleanupAbandoned();

  const authenticator: Authenticator = {
    async authenticate(req) {
      const token = bearerToken(req);
      return token ? services.auth.authenticate(token) : null;
    },
  };
  const http = await buildHttpServer(services, authenticator, config, { durable: metadata.durable });
  bus.logger = http.log;
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
      await http.close(); // its preClose hook ends the push channels first
      await bus.close();
      await running;
      await coffer.close();
    },
  };
}
