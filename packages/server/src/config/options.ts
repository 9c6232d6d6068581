/**
 * Every setting, declared once as data. The same declarations drive the
 * config file, environment variables, command-line flags and `--help`.
 * Precedence: built-in default < config file < environment < flag.
 */
export type OptionType = 'string' | 'integer' | 'boolean';

export interface OptionSpec {
  readonly key: string;
  readonly flag: string;
  readonly env: string;
  readonly type: OptionType;
  readonly default: string | number | boolean | null;
  readonly help: string;
  /** Largest value an integer setting accepts. */
  readonly max?: number;
  /** Never printed or logged. */
  readonly secret?: boolean;
}

export const OPTIONS = [
  { key: 'port', flag: '--port', env: 'COFFER_PORT', type: 'integer', default: 8080, help: 'TCP port to listen on (0 picks a free one)' },
  { key: 'host', flag: '--host', env: 'COFFER_HOST', type: 'string', default: '127.0.0.1', help: 'address to listen on' },
  { key: 'dataDir', flag: '--data', env: 'COFFER_DATA_DIR', type: 'string', default: './data', help: 'folder for the SQLite database, file contents and outbox' },
  { key: 'databaseUrl', flag: '--database-url', env: 'COFFER_DATABASE_URL', type: 'string', default: null, help: 'metadata database: empty for SQLite in the data folder, or postgres://user@host:port/db', secret: true },
  { key: 's3Endpoint', flag: '--s3-endpoint', env: 'COFFER_S3_ENDPOINT', type: 'string', default: null, help: 'S3-compatible endpoint URL; when set, file contents go to S3 instead of the data folder' },
  { key: 's3Bucket', flag: '--s3-bucket', env: 'COFFER_S3_BUCKET', type: 'string', default: 'coffer', help: 'S3 bucket for file contents' },
  { key: 's3Region', flag: '--s3-region', env: 'COFFER_S3_REGION', type: 'string', default: 'us-east-1', help: 'S3 region' },
  { key: 's3AccessKeyId', flag: '--s3-access-key-id', env: 'COFFER_S3_ACCESS_KEY_ID', type: 'string', default: null, help: 'S3 access key id' },
  { key: 's3SecretAccessKey', flag: '--s3-secret-access-key', env: 'COFFER_S3_SECRET_ACCESS_KEY', type: 'string', default: null, help: 'S3 secret access key', secret: true },
  { key: 's3TimeoutSeconds', flag: '--s3-timeout', env: 'COFFER_S3_TIMEOUT_SECONDS', type: 'integer', default: 150, help: 'seconds an S3 request may go without any traffic before it fails and is retried' },
  { key: 'defaultQuotaBytes', flag: '--default-quota', env: 'COFFER_DEFAULT_QUOTA_BYTES', type: 'integer', default: 0, help: 'storage quota of new users in bytes (0 = unlimited)' },
  { key: 'trashRetentionDays', flag: '--trash-retention-days', env: 'COFFER_TRASH_RETENTION_DAYS', type: 'integer', default: 30, help: 'days an item stays in the recycle bin before it is purged' },
  { key: 'versionRetentionDays', flag: '--version-retention-days', env: 'COFFER_VERSION_RETENTION_DAYS', type: 'integer', default: 30, help: 'days earlier versions of a file are kept' },
  { key: 'changeRetentionDays', flag: '--change-retention-days', env: 'COFFER_CHANGE_RETENTION_DAYS', type: 'integer', default: 90, help: 'days the change feed remembers; a client offline longer resyncs by listing' },
  { key: 'maxVersionsPerFile', flag: '--max-versions', env: 'COFFER_MAX_VERSIONS', type: 'integer', default: 100, help: 'earlier versions kept per file at most' },
  { key: 'maxUploadBytes', flag: '--max-upload-bytes', env: 'COFFER_MAX_UPLOAD_BYTES', type: 'integer', default: 0, help: 'largest single upload in bytes (0 = no limit beyond quota)' },
  { key: 'inlineMaxBytes', flag: '--inline-max-bytes', env: 'COFFER_INLINE_MAX_BYTES', type: 'integer', default: 16384, max: 65536, help: 'chunks up to this many bytes are kept in the metadata database instead of a file or object each (0 = never; chunks already kept there stay readable)' },
  { key: 'sqliteCacheMib', flag: '--sqlite-cache-mib', env: 'COFFER_SQLITE_CACHE_MIB', type: 'integer', default: 64, max: 65536, help: 'memory SQLite may keep of the metadata database\'s pages, in MiB (small files are read from it; SQLite only)' },
  { key: 'maxJsonBodyBytes', flag: '--max-json-body', env: 'COFFER_MAX_JSON_BODY_BYTES', type: 'integer', default: 1048576, help: 'largest JSON request body in bytes' },
  { key: 'maxHeaderBytes', flag: '--max-header-bytes', env: 'COFFER_MAX_HEADER_BYTES', type: 'integer', default: 16384, help: 'largest request header block in bytes' },
  { key: 'jobIntervalSeconds', flag: '--job-interval', env: 'COFFER_JOB_INTERVAL_SECONDS', type: 'integer', default: 3600, help: 'seconds between maintenance runs (trash, versions, garbage collection)' },
  { key: 'gcGraceSeconds', flag: '--gc-grace', env: 'COFFER_GC_GRACE_SECONDS', type: 'integer', default: 3600, help: 'unreferenced chunks younger than this are never collected' },
  { key: 'uploadLeaseSeconds', flag: '--upload-lease', env: 'COFFER_UPLOAD_LEASE_SECONDS', type: 'integer', default: 900, help: 'an upload with no progress for this long is abandoned' },
  { key: 'publicUrl', flag: '--public-url', env: 'COFFER_PUBLIC_URL', type: 'string', default: null, help: 'the address users reach this server at, for links in e-mails (default: http://host:port)' },
  { key: 'trustProxy', flag: '--trust-proxy', env: 'COFFER_TRUST_PROXY', type: 'boolean', default: false, help: 'behind a reverse proxy: take the client IP and HTTPS from X-Forwarded-* headers' },
  { key: 'allowSignup', flag: '--allow-signup', env: 'COFFER_ALLOW_SIGNUP', type: 'boolean', default: false, help: 'anyone may create an account (otherwise only an admin creates them)' },
  { key: 'require2fa', flag: '--require-2fa', env: 'COFFER_REQUIRE_2FA', type: 'boolean', default: false, help: 'every user must turn on two-factor authentication before using the account' },
  { key: 'sessionIdleMinutes', flag: '--session-idle-minutes', env: 'COFFER_SESSION_IDLE_MINUTES', type: 'integer', default: 30, help: 'a browser session without "keep me signed in" ends after this many idle minutes' },
  { key: 'rememberIdleDays', flag: '--remember-idle-days', env: 'COFFER_REMEMBER_IDLE_DAYS', type: 'integer', default: 30, help: 'a "keep me signed in" browser session ends after this many idle days' },
  { key: 'clientIdleDays', flag: '--client-idle-days', env: 'COFFER_CLIENT_IDLE_DAYS', type: 'integer', default: 90, help: 'a sync client session ends after this many days without contact' },
  { key: 'accessTokenSeconds', flag: '--access-token-seconds', env: 'COFFER_ACCESS_TOKEN_SECONDS', type: 'integer', default: 900, help: 'lifetime of a sync client access token (renewed with its refresh token)' },
  { key: 'deviceCodeMinutes', flag: '--device-code-minutes', env: 'COFFER_DEVICE_CODE_MINUTES', type: 'integer', default: 10, help: 'minutes a device sign-in request (coffer login via the browser) waits for approval' },
  { key: 'smtpUrl', flag: '--smtp-url', env: 'COFFER_SMTP_URL', type: 'string', default: null, help: 'SMTP server for mail, smtp://user:pass@host:port (smtps:// for TLS); without it mail is written to data/outbox/', secret: true },
  { key: 'mailFrom', flag: '--mail-from', env: 'COFFER_MAIL_FROM', type: 'string', default: 'Coffer <coffer@localhost>', help: 'sender address of mail from this server' },
  { key: 'logLevel', flag: '--log-level', env: 'COFFER_LOG_LEVEL', type: 'string', default: 'info', help: 'log level: fatal, error, warn, info, debug, trace, silent' },
] as const satisfies readonly OptionSpec[];

type Spec = (typeof OPTIONS)[number];
type ValueOf<S extends OptionSpec> = S['type'] extends 'integer' ? number : S['type'] extends 'boolean' ? boolean : string;
type Nullable<S extends OptionSpec> = S['default'] extends null ? ValueOf<S> | null : ValueOf<S>;

/** The one frozen, typed configuration object. */
export type Config = { readonly [S in Spec as S['key']]: Nullable<S> };
