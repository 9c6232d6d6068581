/**
 * How services write the change feed: `record` inside the transaction that
 * made the change, then `publish` once it has committed.
 */
import { changeRepository, type ChangeOp } from '../repositories/change.repository.ts';
import type { Executor } from '../repositories/executor.ts';
import type { ItemRow } from '../repositories/item.repository.ts';
import type { ServiceDeps } from './context.ts';

export class ChangeLog {
  private readonly deps: Pick<ServiceDeps, 'clock' | 'publisher'>;
  constructor(deps: Pick<ServiceDeps, 'clock' | 'publisher'>) {
    this.deps = deps;
  }

  /** Appends to the drive's feed; returns the new last position. */
  record(trx: Executor, ownerId: string, entries: { op: ChangeOp; item: ItemRow }[]): Promise<number> {
    return changeRepository.append(trx, ownerId, entries, this.deps.clock.now());
  }

  publish(ownerId: string, seq: number): void {
    if (seq > 0) this.deps.publisher.published(ownerId, seq);
  }

  /**
   * Runs `work` in a transaction that holds the drive's write lock from its
   * first statement and records changes, then publishes after commit.
   */
  async commit<T>(db: ServiceDeps['db'], ownerId: string, work: (trx: Executor, record: (entries: { op: ChangeOp; item: ItemRow }[]) => Promise<void>) => Promise<T>): Promise<T> {
    let seq = 0;
    const result = await db.transaction().execute(async (trx) => {
      await changeRepository.lockDrive(trx, ownerId);
      return work(trx, async (entries) => { seq = await this.record(trx, ownerId, entries); });
    });
    this.publish(ownerId, seq);
    return result;
  }
}
