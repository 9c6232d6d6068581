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
import { DatabaseBlobStore } from './blobstore/database.blob-store.ts';
import { RoutedBlobStore } from './blobstore/routed.blob-store.ts';
import { PackedBlobStore } from './blobstore/packed.blob-store.ts';
import { INLINE_KEY_PREFIX } from './services/chunk-writer.ts';
import { noPublisher, systemClock, type ChangePublisher, type Clock, type RevocationPublisher, type ServiceDeps } from './services/context.ts';
import { TreeService } from './services/tree.service.ts';
import { UploadService } from './services/upload.service.ts';
import { DownloadService } from './services/download.service.ts';
import { VersionService } from './services/version.service.ts';
import { UserService } from './services/user.service.ts';
import { AuditService } from './services/accounts/audit.service.ts';
import { SessionService } from './services/accounts/session.service.ts';
import { SignInService } from './services/accounts/sign-in.service.ts';
import { MfaService } from './services/accounts/mfa.service.ts';
import { PasswordService } from './services/accounts/password.service.ts';
import { DeviceService } from './services/accounts/device.service.ts';
import { DeviceLoginService } from './services/accounts/device-login.service.ts';
import { ThrottleService } from './services/accounts/throttle.service.ts';
import { AccountNotices } from './services/accounts/account-notices.ts';
import { pruneAccounts } from './services/accounts/account-maintenance.ts';
import type { Mailer } from './mail/mailer.ts';
import { OutboxMailer } from './mail/outbox.mailer.ts';
import { MaintenanceService } from './services/maintenance.service.ts';
import { StorageCheckService } from './services/storage-check.service.ts';
import { ChangeFeedService } from './services/change-feed.service.ts';
import { UploadSessionService } from './services/upload-session.service.ts';
import { buildHttpServer } from './http/http-server.ts';
import { pino, type Logger } from 'pino';
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
  /** Accounts and security (services/accounts/). */
  sessions: SessionService;
  signIn: SignInService;
  mfa: MfaService;
  passwords: PasswordService;
  devices: DeviceService;
  /** Browser-approved sign-in of sync clients (RFC 8628 style). */
  deviceLogin: DeviceLoginService;
  audit: AuditService;
  throttle: ThrottleService;
  notices: AccountNotices;
  maintenance: MaintenanceService;
  check: StorageCheckService;
  changes: ChangeFeedService;
  /** Upload sessions of the chunk protocol. */
  uploadSessions: UploadSessionService;
  /** Open push channels of this process (empty in tools that serve no HTTP). */
  push: PushHub;
}

export interface Coffer {
  config: Config;
  metadata: MetadataDb;
  blobs: BlobStore;
  services: Services;
  logger: Logger;
  close(): Promise<void>;
}

/** SMTP when configured, else .eml files in data/outbox/ (nodemailer is loaded only when needed). */
export async function createMailer(config: Config, logger: Logger): Promise<Mailer> {
  if (config.smtpUrl) {
    const { SmtpMailer } = await import('./mail/smtp.mailer.ts');
    return new SmtpMailer(config.smtpUrl, config.mailFrom);
  }
  return new OutboxMailer(join(resolve(config.dataDir), 'outbox'), config.mailFrom, (msg, fields) => logger.info(fields, msg));
}

/** S3 is loaded only when configured: the AWS SDK is large, and a bigger heap makes every GC slower. */
export async function createBlobStore(config: Config): Promise<BlobStore> {
  if (config.s3Endpoint) {
    const { S3BlobStore } = await import('./blobstore/s3.blob-store.ts');
    return new S3BlobStore({
      endpoint: config.s3Endpoint, bucket: config.s3Bucket, region: config.s3Region,
      accessKeyId: config.s3AccessKeyId ?? '', secretAccessKey: config.s3SecretAccessKey ?? '',
      idleTimeoutMs: config.s3TimeoutSeconds * 1000,
    });
  }
  return new LocalBlobStore(join(resolve(config.dataDir), 'blobs'));
}

/** Opens storage and builds the services; no network listener (the admin CLI uses this too). */
export async function createCoffer(config: Config, opts: {
  clock?: Clock; publisher?: ChangePublisher; revocations?: RevocationPublisher; push?: PushHub; logger?: Logger; publicUrl?: () => string;
} = {}): Promise<Coffer> {
  const logger = opts.logger ?? pino({ level: config.logLevel });
  const metadata = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: resolve(config.dataDir), sqliteCacheMib: config.sqliteCacheMib });
  // Small chunks live in the metadata database whatever the setting says now: ones stored earlier must stay readable.
  // The main store reads chunks inside packs (written where it can build them: local disk).
  const blobs = new RoutedBlobStore(new PackedBlobStore(await createBlobStore(config)), { prefix: INLINE_KEY_PREFIX, store: new DatabaseBlobStore(metadata.db) });
  try {
    await blobs.init();
  } catch (e) {
    await metadata.close();
    throw e;
  }
  const deps: ServiceDeps = {
    db: metadata.db, blobs, clock: opts.clock ?? systemClock, publisher: opts.publisher ?? noPublisher, revocations: opts.revocations,
    inlineMaxBytes: config.inlineMaxBytes, credentialEpoch: metadata.credentialEpoch,
  };
  const tree = new TreeService(deps);
  const users = new UserService(deps, config.defaultQuotaBytes);
  const logError = (msg: string) => (err: unknown) => logger.error({ err }, msg);
  const audit = new AuditService(deps, logError('audit event not recorded'));
  const sessions = new SessionService(deps, {
    publicIdleMs: config.sessionIdleMinutes * 60_000, rememberIdleMs: config.rememberIdleDays * 86_400_000,
    clientIdleMs: config.clientIdleDays * 86_400_000, accessTokenMs: config.accessTokenSeconds * 1000,
  }, audit);
  const mailer = await createMailer(config, logger);
  const publicUrl = opts.publicUrl ?? (() => config.publicUrl ?? `http://${config.host}:${config.port}`);
  const notices = new AccountNotices(mailer, publicUrl, logError('mail not sent'));
  const throttle = new ThrottleService(deps);
  const mfa = new MfaService(deps, audit, { require2fa: config.require2fa, throttle });
  const services: Services = {
    tree,
    upload: new UploadService(deps, tree, { maxUploadBytes: config.maxUploadBytes, uploadLeaseMs: config.uploadLeaseSeconds * 1000 }),
    download: new DownloadService(deps),
    versions: new VersionService(deps, tree),
    users, sessions, mfa, audit, throttle, notices,
    signIn: new SignInService(deps, { users, sessions, mfa, throttle, audit, notices }, { require2fa: config.require2fa, allowSignup: config.allowSignup }),
    passwords: new PasswordService(deps, { users, sessions, throttle, audit, notices }, logError('password reset request failed')),
    devices: new DeviceService(deps, sessions, audit),
    deviceLogin: new DeviceLoginService(deps, { users, sessions, throttle, audit, notices }, {
      ttlMs: Math.max(1, config.deviceCodeMinutes) * 60_000, require2fa: config.require2fa, publicUrl,
    }),
    maintenance: new MaintenanceService(deps, {
      trashRetentionDays: config.trashRetentionDays, versionRetentionDays: config.versionRetentionDays,
      maxVersionsPerFile: config.maxVersionsPerFile, gcGraceMs: config.gcGraceSeconds * 1000, changeRetentionDays: config.changeRetentionDays,
    }, metadata.durable),
    check: new StorageCheckService(deps),
    changes: new ChangeFeedService(deps),
    uploadSessions: new UploadSessionService(deps, tree, { maxUploadBytes: config.maxUploadBytes, uploadLeaseMs: config.uploadLeaseSeconds * 1000 }),
    push: opts.push ?? new PushHub(),
  };
  return {
    config, metadata, blobs, services, logger,
    async close() {
      await services.passwords.settled();
      await notices.settled();
      await mailer.close();
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
  // Asynchronous writes: a busy server's log lines go out several per write instead of one blocking write each
  // (pino flushes what is left when the process exits).
  const logger = pino({ level: config.logLevel, redact: ['req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]'] },
    pino.destination({ dest: 1, sync: false }));
  let publicUrl = config.publicUrl;
  const bus: PushBus = isPostgresUrl(config.databaseUrl) ? new PgNotifyBus({ databaseUrl: config.databaseUrl, hub: push }) : new LocalBus(push);
  const coffer = await createCoffer(config, { ...opts, publisher: bus, revocations: bus, push, logger, publicUrl: () => publicUrl ?? `http://${config.host}:${config.port}` });
  const { services, metadata } = coffer;
  if (bus instanceof PgNotifyBus) {
    bus.resync = async (hub) => {
      for (const ownerId of hub.owners()) hub.changed(ownerId, (await changeRepository.position(metadata.db, ownerId)).last);
      for (const credentialKey of hub.credentialKeys()) if (!(await services.sessions.isValid(credentialKey))) hub.revoked({ credentialKey });
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

  const http = await buildHttpServer(services, services.sessions, config, { durable: metadata.durable, logger });
  bus.logger = http.log;
  await http.listen({ port: config.port, host: config.host });
  const address = http.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  publicUrl ??= url;

  let running: Promise<unknown> | null = null;
  const runJobs = () => {
    running ??= services.maintenance.runAll()
      .then(async (r) => ({ ...r, ...(await pruneAccounts(metadata.db, services.sessions, (opts.clock ?? systemClock).now())) }))
      .then((r) => http.log.info({ maintenance: r }, 'maintenance done'))
      .catch((err) => http.log.error({ err }, 'maintenance failed'))
      .finally(() => { running = null; });
  };
  const timer = setInterval(runJobs, config.jobIntervalSeconds * 1000);
  timer.unref();
  const firstRun = setTimeout(runJobs, 5_000);
  firstRun.unref();

  return {
    coffer, http, url,
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
