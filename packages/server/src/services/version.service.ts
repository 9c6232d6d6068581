/** Version history of a file: list earlier contents and make one current again. */
import { CofferError } from '@coffer/protocol';
import { newId } from '../db/ids.ts';
import { itemRepository, type ItemRow } from '../repositories/item.repository.ts';
import { userRepository } from '../repositories/user.repository.ts';
import { versionRepository, type VersionRow } from '../repositories/version.repository.ts';
import type { Principal, ServiceDeps } from './context.ts';
import { ChangeLog } from './change-log.ts';
import type { TreeService } from './tree.service.ts';

export class VersionService {
  private readonly deps: Pick<ServiceDeps, 'db' | 'clock' | 'publisher'>;
  private readonly tree: TreeService;
  private readonly log: ChangeLog;
  constructor(deps: Pick<ServiceDeps, 'db' | 'clock' | 'publisher'>, tree: TreeService) {
    this.deps = deps;
    this.tree = tree;
    this.log = new ChangeLog(deps);
  }

  async list(p: Principal, itemId: string): Promise<{ item: ItemRow; versions: VersionRow[] }> {
    const item = await this.tree.getLive(p, itemId);
    if (item.kind !== 'file') throw new CofferError('NOT_A_FILE');
    return { item, versions: await versionRepository.listForItem(this.deps.db, item.id) };
  }

  async get(p: Principal, itemId: string, versionId: string): Promise<{ item: ItemRow; version: VersionRow }> {
    const item = await this.tree.getLive(p, itemId);
    const version = await versionRepository.findById(this.deps.db, item.id, versionId);
    if (!version) throw new CofferError('NOT_FOUND', 'No such version.');
    return { item, version };
  }

  /** Makes an earlier version current by adding it as the newest version; history is never rewritten. */
  async restore(p: Principal, itemId: string, versionId: string): Promise<ItemRow> {
    return this.log.commit(this.deps.db, p.userId, async (trx, record) => {
      const item = await this.tree.getLive(p, itemId, trx);
      const old = await versionRepository.findById(trx, item.id, versionId);
      if (!old) throw new CofferError('NOT_FOUND', 'No such version.');
      const now = this.deps.clock.now();
      const id = newId();
      await versionRepository.cloneManifest(trx, old.id, { ...old, id, created_at: now });
      if (!(await userRepository.addUsedBytes(trx, p.userId, old.size - item.size))) throw new CofferError('QUOTA_EXCEEDED');
      if (!(await itemRepository.setContent(trx, item.id, { versionId: id, size: old.size, contentHash: old.content_hash, now, expectedRev: item.rev }))) {
        throw new CofferError('VERSION_CONFLICT');
      }
      const updated = { ...item, version_id: id, size: old.size, content_hash: old.content_hash, modified_at: now, rev: item.rev + 1 };
      await record([{ op: 'update', item: updated }]);
      return updated;
    });
  }
}
