/**
 * Reading a drive's change feed. A cursor names the server instance, the
 * drive and a position; it is opaque to clients. A cursor that cannot be
 * continued exactly — history pruned, another server, another drive, or a
 * position this server never reached (a restored backup) — gets
 * RESYNC_REQUIRED (410): the client lists the drive again. Never a silent gap.
 */
import { randomUUID } from 'node:crypto';
import { CofferError } from '@coffer/protocol';
import { changeRepository, type ChangeRow } from '../repositories/change.repository.ts';
import type { Principal, ServiceDeps } from './context.ts';

export interface ChangePage { changes: ChangeRow[]; cursor: string; hasMore: boolean }

export class ChangeFeedService {
  private readonly deps: Pick<ServiceDeps, 'db'>;
  private instance: Promise<string> | undefined;
  constructor(deps: Pick<ServiceDeps, 'db'>) {
    this.deps = deps;
  }

  /** This installation's stable id, created on first use and shared by every process on the same database. */
  instanceId(): Promise<string> {
    this.instance ??= (async () => {
      const { db } = this.deps;
      await db.insertInto('server_info').values({ key: 'instance_id', value: randomUUID() }).onConflict((oc) => oc.column('key').doNothing()).execute();
      return (await db.selectFrom('server_info').select('value').where('key', '=', 'instance_id').executeTakeFirstOrThrow()).value;
    })();
    return this.instance;
  }

  async latestCursor(p: Principal): Promise<string> {
    const { last } = await changeRepository.position(this.deps.db, p.userId);
    return this.encode(await this.instanceId(), p.rootId, last);
  }

  /** The drive's current position, and the cursor that continues from it (what a push channel reports on connect). */
  async latest(p: Principal): Promise<{ cursor: string; position: number }> {
    const { last } = await changeRepository.position(this.deps.db, p.userId);
    return { cursor: this.encode(await this.instanceId(), p.rootId, last), position: last };
  }

  async read(p: Principal, cursor: string, limit: number): Promise<ChangePage> {
    if (cursor === 'latest') return { changes: [], cursor: await this.latestCursor(p), hasMore: false };
    const c = decodeCursor(cursor);
    const instance = await this.instanceId();
    if (c.instance !== instance || c.drive !== p.rootId) {
      throw new CofferError('RESYNC_REQUIRED', undefined, { reason: c.instance !== instance ? 'other-server' : 'other-drive' });
    }
    const { last, prunedThrough } = await changeRepository.position(this.deps.db, p.userId);
    if (c.seq < prunedThrough) throw new CofferError('RESYNC_REQUIRED', undefined, { reason: 'history-expired' });
    if (c.seq > last) throw new CofferError('RESYNC_REQUIRED', undefined, { reason: 'cursor-ahead-of-server' });
    const changes = await changeRepository.after(this.deps.db, p.userId, c.seq, limit);
    // Positions have no gaps: if the next one is not there, retention pruned it after the check above.
    if (c.seq < last && changes[0]?.seq !== c.seq + 1) throw new CofferError('RESYNC_REQUIRED', undefined, { reason: 'history-expired' });
    const upto = changes.length ? changes[changes.length - 1].seq : c.seq;
    return { changes, cursor: this.encode(instance, p.rootId, upto), hasMore: upto < last };
  }

  private encode(instance: string, drive: string, seq: number): string {
    return Buffer.from(`1|${instance}|${drive}|${seq}`).toString('base64url');
  }
}

function decodeCursor(cursor: string): { instance: string; drive: string; seq: number } {
  const parts = Buffer.from(cursor, 'base64url').toString().split('|');
  if (parts.length !== 4 || parts[0] !== '1' || !/^\d{1,15}$/.test(parts[3])) {
    throw new CofferError('VALIDATION_FAILED', 'The cursor is not one this server issued; use "latest" or one from a previous answer.');
  }
  return { instance: parts[1], drive: parts[2], seq: Number(parts[3]) };
}
