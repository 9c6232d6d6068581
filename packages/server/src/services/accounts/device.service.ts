/**
 * What a user manages from anywhere: the devices signed in to the account
 * and their sessions, signing any of them out, app passwords, and remote
 * wipe. And what a device tells the server about itself: its pending
 * changes, and the outcome of a wipe.
 *
 * A wipe, once requested, stays pending until the device confirms it:
 * signing the device out does not cancel it (its credentials keep working
 * for the wipe endpoints only), and after confirmation they are dead.
 */
import { CofferError } from '@coffer/protocol';
import { deviceRepository, type DeviceRow } from '../../repositories/device.repository.ts';
import { sessionRepository, type SessionRow } from '../../repositories/session.repository.ts';
import type { Principal, ServiceDeps } from '../context.ts';
import type { AuditService, Origin } from './audit.service.ts';
import type { SessionService } from './session.service.ts';

export interface SessionView {
  id: string;
  kind: string;
  current: boolean;
  persistent: boolean;
  createdAt: number;
  lastSeenAt: number;
  ip: string | null;
  userAgent: string | null;
}

export interface WipeView {
  requestedAt: number;
  fetchedAt: number | null;
  confirmedAt: number | null;
  report: WipeReport | null;
}

export interface DeviceView {
  id: string;
  name: string;
  kind: string;
  platform: string | null;
  current: boolean;
  signedIn: boolean;
  createdAt: number;
  lastSeenAt: number;
  ip: string | null;
  userAgent: string | null;
  /** Local changes not yet uploaded, as the device last reported (null: never reported). */
  pendingChanges: number | null;
  pendingReportedAt: number | null;
  wipe: WipeView | null;
  sessions: SessionView[];
}

/** What a wiped device says it did. Paths are relative to its sync folder. */
export interface WipeReport {
  removedCount: number;
  removed?: string[];
  /** Files kept because their content was not confirmed in the cloud. */
  kept: { path: string; reason: string }[];
}

export class DeviceService {
  private readonly deps: Pick<ServiceDeps, 'db' | 'clock'>;
  private readonly sessions: SessionService;
  private readonly audit: AuditService;
  constructor(deps: Pick<ServiceDeps, 'db' | 'clock'>, sessions: SessionService, audit: AuditService) {
    this.deps = deps;
    this.sessions = sessions;
    this.audit = audit;
  }

  async list(p: Principal): Promise<DeviceView[]> {
    const [devices, sessions] = await Promise.all([deviceRepository.listByUser(this.deps.db, p.userId), sessionRepository.listByUser(this.deps.db, p.userId)]);
    const now = this.deps.clock.now();
    const live = sessions.filter((s) => s.idle_timeout_ms === 0 || now - s.last_seen_at < s.idle_timeout_ms);
    return devices.map((d) => toView(d, live.filter((s) => s.device_id === d.id), p));
  }

  /** Signs a device out and removes it from the list (kept while a wipe is pending, so the wipe can finish). */
  async remove(p: Principal, deviceId: string, origin: Origin): Promise<void> {
    const device = await this.device(p, deviceId);
    const revoked = await this.sessions.revokeDevice(p.userId, deviceId, 'signed out by the user');
    if (device.wipe_requested_at === null || device.wipe_confirmed_at !== null) await deviceRepository.delete(this.deps.db, p.userId, deviceId);
    await this.audit.record({ userId: p.userId, type: 'device.removed', origin, deviceId, sessionId: p.sessionId, detail: { name: device.name, sessionsSignedOut: revoked.length } });
  }

  async signOutSession(p: Principal, sessionId: string, origin: Origin): Promise<void> {
    const revoked = await this.sessions.revoke(p.userId, [sessionId], sessionId === p.sessionId ? 'signed out' : 'signed out by the user');
    if (revoked.length === 0) {
      if (sessionId === p.sessionId) return; // signing out twice is still signed out
      throw new CofferError('NOT_FOUND', 'No such session.');
    }
    await this.audit.record({ userId: p.userId, type: sessionId === p.sessionId ? 'signout' : 'session.revoked', origin, sessionId, detail: { by: p.sessionId ?? null } });
  }

  /** "Sign out everywhere except here." Returns how many sessions ended. */
  async signOutOthers(p: Principal, origin: Origin): Promise<number> {
    const revoked = await this.sessions.revokeAll(p.userId, 'signed out everywhere else', p.sessionId);
    await this.audit.record({ userId: p.userId, type: 'session.revoked', origin, sessionId: p.sessionId, detail: { others: revoked.length } });
    return revoked.length;
  }

  /** A named app password for a tool that only speaks basic auth; shown once. */
  async createAppPassword(p: Principal, name: string, origin: Origin): Promise<{ deviceId: string; name: string; password: string }> {
    const issued = await this.sessions.issue(p.userId, { kind: 'app_password', name }, { origin });
    await this.audit.record({ userId: p.userId, type: 'app_password.created', origin, deviceId: issued.deviceId, sessionId: p.sessionId, detail: { name } });
    return { deviceId: issued.deviceId, name: issued.deviceName, password: issued.appPassword! };
  }

  async requestWipe(p: Principal, deviceId: string, origin: Origin): Promise<DeviceView> {
    const device = await this.device(p, deviceId);
    if (device.kind === 'app_password') throw new CofferError('VALIDATION_FAILED', 'An app password holds no files to wipe; remove it instead.');
    if (deviceId === p.deviceId) throw new CofferError('VALIDATION_FAILED', 'This is the device you are using; sign it out or disconnect it instead.');
    if (await deviceRepository.requestWipe(this.deps.db, p.userId, deviceId, this.deps.clock.now())) {
      await this.audit.record({ userId: p.userId, type: 'wipe.requested', origin, deviceId, sessionId: p.sessionId, detail: { name: device.name } });
    }
    // Its push channel closes, so a connected client learns of the wipe on its next request.
    await this.sessions.notifyRestricted(p.userId, deviceId);
    return (await this.list(p)).find((d) => d.id === deviceId)!;
  }

  /** The calling device asks whether it is to be wiped; the first such contact is recorded. */
  async fetchWipe(p: Principal, origin: Origin): Promise<{ wipe: boolean; requestedAt: number | null }> {
    const device = await this.device(p, p.deviceId ?? '');
    if (device.wipe_requested_at === null) return { wipe: false, requestedAt: null };
    if (device.wipe_fetched_at === null) {
      await deviceRepository.update(this.deps.db, p.userId, device.id, { wipe_fetched_at: this.deps.clock.now() });
      await this.audit.record({ userId: p.userId, type: 'wipe.fetched', origin, deviceId: device.id, sessionId: p.sessionId });
    }
    return { wipe: true, requestedAt: device.wipe_requested_at };
  }

  /** The device reports what it removed and kept; then its credentials are dead. */
  async confirmWipe(p: Principal, report: WipeReport, origin: Origin): Promise<void> {
    const device = await this.device(p, p.deviceId ?? '');
    if (device.wipe_requested_at === null) throw new CofferError('VALIDATION_FAILED', 'No wipe was requested for this device.');
    if (device.wipe_confirmed_at !== null) return;
    const now = this.deps.clock.now();
    await deviceRepository.update(this.deps.db, p.userId, device.id, { wipe_confirmed_at: now, wipe_fetched_at: device.wipe_fetched_at ?? now, wipe_report: JSON.stringify(report) });
    await this.sessions.revokeDevice(p.userId, device.id, 'wiped');
    await this.sessions.notifyRestricted(p.userId, device.id);
    await this.audit.record({ userId: p.userId, type: 'wipe.confirmed', origin, deviceId: device.id, sessionId: p.sessionId, detail: { removedCount: report.removedCount, keptCount: report.kept.length } });
  }

  /** The sync client's count of local changes not yet uploaded, shown next to the device. */
  async reportPending(p: Principal, pendingChanges: number): Promise<void> {
    await deviceRepository.update(this.deps.db, p.userId, p.deviceId ?? '', { pending_changes: pendingChanges, pending_reported_at: this.deps.clock.now() });
  }

  private async device(p: Principal, deviceId: string): Promise<DeviceRow> {
    const d = await deviceRepository.findById(this.deps.db, p.userId, deviceId);
    if (!d) throw new CofferError('NOT_FOUND', 'No such device.');
    return d;
  }
}

function toView(d: DeviceRow, sessions: SessionRow[], p: Principal): DeviceView {
  return {
    id: d.id, name: d.name, kind: d.kind, platform: d.platform, current: d.id === p.deviceId, signedIn: sessions.length > 0,
    createdAt: d.created_at, lastSeenAt: d.last_seen_at, ip: d.ip, userAgent: d.user_agent,
    pendingChanges: d.pending_changes, pendingReportedAt: d.pending_reported_at,
    wipe: d.wipe_requested_at === null ? null : {
      requestedAt: d.wipe_requested_at, fetchedAt: d.wipe_fetched_at, confirmedAt: d.wipe_confirmed_at,
      report: d.wipe_report ? (JSON.parse(d.wipe_report) as WipeReport) : null,
    },
    sessions: sessions.map((s) => ({
      id: s.id, kind: s.kind, current: s.id === p.sessionId, persistent: s.persistent === 1,
      createdAt: s.created_at, lastSeenAt: s.last_seen_at, ip: s.ip, userAgent: s.user_agent,
    })),
  };
}
