/**
 * How change and revocation events reach the push hubs of every process.
 * One process (SQLite): straight into this process's hub. Several processes
 * (PostgreSQL): see pg-notify.bus.ts.
 */
import type { ChangePublisher, Revocation, RevocationPublisher } from '../services/context.ts';
import type { PushHub } from './push-hub.ts';

export interface BusLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface PushBus extends ChangePublisher, RevocationPublisher {
  readonly kind: 'local' | 'postgres';
  /** Where problems are reported; the HTTP logger once it exists. */
  logger: BusLogger;
  start(): Promise<void>;
  close(): Promise<void>;
}

export const silentLogger: BusLogger = { warn() {}, info() {} };

/** A single process: every event goes straight to the hub. */
export class LocalBus implements PushBus {
  readonly kind = 'local' as const;
  logger: BusLogger = silentLogger;
  private readonly hub: PushHub;
  constructor(hub: PushHub) {
    this.hub = hub;
  }
  published(ownerId: string, seq: number): void {
    this.hub.changed(ownerId, seq);
  }
  revoked(r: Revocation): void {
    this.hub.revoked(r);
  }
  async start(): Promise<void> {}
  async close(): Promise<void> {}
}
