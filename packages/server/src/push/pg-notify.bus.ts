/**
 * Push across processes with PostgreSQL LISTEN/NOTIFY: every `coffer server`
 * on the same database LISTENs on two channels through one dedicated
 * connection and tells its own hub what it hears.
 *   coffer_changes      '<ownerId>:<seq>'  a drive's feed advanced (sent after the commit)
 *   coffer_revocations  JSON Revocation    a credential or user was revoked
 * The sending process also delivers to its own hub at once (no round trip);
 * the echo it then hears is dropped by the hub (positions only move forward,
 * closing a closed channel is a no-op).
 *
 * NOTIFY is not durable: a notification sent while the listening connection
 * is down is lost. So the listener reconnects with backoff, and after every
 * reconnect `resync` runs: it re-reads the feed position of every drive with
 * an open channel and re-checks every channel's credential, so a change or a
 * revocation missed during the gap is still delivered.
 */
import pg from 'pg';
import type { Revocation } from '../services/context.ts';
import type { PushHub } from './push-hub.ts';
import { silentLogger, type BusLogger, type PushBus } from './push-bus.ts';

export const CHANGES_CHANNEL = 'coffer_changes';
export const REVOCATIONS_CHANNEL = 'coffer_revocations';
/** How the listening connection shows in pg_stat_activity. */
export const LISTENER_APPLICATION_NAME = 'coffer-push-listener';

export interface PgNotifyBusOptions {
  databaseUrl: string;
  hub: PushHub;
}

export class PgNotifyBus implements PushBus {
  readonly kind = 'postgres' as const;
  logger: BusLogger = silentLogger;
  /** After a reconnect: bring the hub up to date with what may have been missed (set by the wiring). */
  resync: ((hub: PushHub) => Promise<void>) | undefined;
  private readonly opts: PgNotifyBusOptions;
  private readonly sender: pg.Pool;
  private listener: pg.Client | null = null;
  private closed = false;
  private retryMs = 100;
  private retryTimer: NodeJS.Timeout | undefined;
  private connecting: Promise<void> | null = null;

  constructor(opts: PgNotifyBusOptions) {
    this.opts = opts;
    this.sender = new pg.Pool({ connectionString: opts.databaseUrl, max: 2 });
    this.sender.on('error', () => {}); // an idle connection the server ended is replaced on next use
  }

  published(ownerId: string, seq: number): void {
    this.opts.hub.changed(ownerId, seq);
    this.notify(CHANGES_CHANNEL, `${ownerId}:${seq}`);
  }

  revoked(r: Revocation): void {
    this.opts.hub.revoked(r);
    this.notify(REVOCATIONS_CHANNEL, JSON.stringify({ credentialKey: r.credentialKey, userId: r.userId }));
  }

  /** Connects the listener; the first connection must succeed (a wrong URL fails startup). */
  async start(): Promise<void> {
    await this.connect(false);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    await this.connecting?.catch(() => {});
    const l = this.listener;
    this.listener = null;
    await l?.end().catch(() => {});
    await this.sender.end().catch(() => {});
  }

  private notify(channel: string, payload: string): void {
    if (this.closed) return;
    this.sender.query('select pg_notify($1, $2)', [channel, payload]).catch((err: unknown) => {
      this.logger.warn({ err, channel }, 'push: NOTIFY failed; other processes learn of this change late (their next reconnect or event)');
    });
  }

  private connect(isReconnect: boolean): Promise<void> {
    this.connecting = (async () => {
      const client = new pg.Client({ connectionString: this.opts.databaseUrl, keepAlive: true, application_name: LISTENER_APPLICATION_NAME });
      client.on('notification', (m) => this.onNotification(m.channel, m.payload ?? ''));
      client.on('error', (err) => this.lost(client, err));
      client.on('end', () => this.lost(client, new Error('connection ended')));
      try {
        await client.connect();
        await client.query(`LISTEN ${CHANGES_CHANNEL}; LISTEN ${REVOCATIONS_CHANNEL}`);
      } catch (err) {
        client.removeAllListeners('end');
        client.on('error', () => {});
        await client.end().catch(() => {});
        throw err;
      }
      if (this.closed) {
        await client.end().catch(() => {});
        return;
      }
      this.listener = client;
      this.retryMs = 100;
      if (isReconnect) {
        this.logger.info({}, 'push: listening again');
        await this.resync?.(this.opts.hub).catch((err: unknown) => this.logger.warn({ err }, 'push: resync after reconnect failed'));
      }
    })().finally(() => { this.connecting = null; });
    return this.connecting;
  }

  private lost(client: pg.Client, err: Error): void {
    if (this.listener !== client || this.closed) return;
    this.listener = null;
    client.removeAllListeners('end');
    client.on('error', () => {});
    client.end().catch(() => {});
    this.logger.warn({ err }, 'push: LISTEN connection lost; reconnecting');
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed) return;
    clearTimeout(this.retryTimer);
    const wait = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, 5_000);
    this.retryTimer = setTimeout(() => {
      this.connect(true).catch((err: unknown) => {
        this.logger.warn({ err, retryInMs: this.retryMs }, 'push: reconnect failed');
        this.scheduleReconnect();
      });
    }, wait);
    this.retryTimer.unref();
  }

  private onNotification(channel: string, payload: string): void {
    if (channel === CHANGES_CHANNEL) {
      const i = payload.lastIndexOf(':');
      const seq = Number(payload.slice(i + 1));
      if (i > 0 && Number.isSafeInteger(seq)) this.opts.hub.changed(payload.slice(0, i), seq);
    } else if (channel === REVOCATIONS_CHANNEL) {
      try {
        const r = JSON.parse(payload) as Revocation;
        this.opts.hub.revoked({
          credentialKey: typeof r.credentialKey === 'string' ? r.credentialKey : undefined,
          userId: typeof r.userId === 'string' ? r.userId : undefined,
        });
      } catch { /* not ours */ }
    }
  }
}
