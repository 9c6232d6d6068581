/**
 * The folder tree of one user's drive: create, look up, list, move, rename,
 * copy, and the recycle bin. Every rule about names, conflicts and ownership
 * lives here, whichever adapter (REST, later WebDAV) calls it.
 */
import { CofferError, normalizeName, parsePath } from '@coffer/protocol';
import { newId } from '../db/ids.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { itemRepository, type ItemRow, type SortKey } from '../repositories/item.repository.ts';
import { versionRepository } from '../repositories/version.repository.ts';
import { userRepository } from '../repositories/user.repository.ts';
import type { Executor } from '../repositories/executor.ts';
import type { Principal, ServiceDeps } from './context.ts';
import { ChangeLog } from './change-log.ts';
import { changeRepository } from '../repositories/change.repository.ts';

export interface ListOptions { sort: SortKey; order: 'asc' | 'desc'; limit: number; offset: number }

export class TreeService {
  private readonly deps: Pick<ServiceDeps, 'db' | 'clock' | 'publisher'>;
  private readonly log: ChangeLog;
  constructor(deps: Pick<ServiceDeps, 'db' | 'clock' | 'publisher'>) {
    this.deps = deps;
    this.log = new ChangeLog(deps);
  }

  /** A live item of the caller's drive, or NOT_FOUND (also for other users' ids: no probing). */
  async getLive(p: Principal, id: string, db: Executor = this.deps.db): Promise<ItemRow> {
    const item = await itemRepository.findById(db, p.userId, id);
    if (!item || item.trashed_at !== null) throw new CofferError('NOT_FOUND');
    return item;
  }

  async getLiveFolder(p: Principal, id: string, db: Executor = this.deps.db): Promise<ItemRow> {
    const item = await this.getLive(p, id, db);
    if (item.kind !== 'folder') throw new CofferError('NOT_A_FOLDER');
    return item;
  }

  /** Resolves a '/'-separated path from the drive root. */
  async resolvePath(p: Principal, path: string, db: Executor = this.deps.db): Promise<ItemRow> {
    const names = parsePath(path);
    if (names.length === 0) return this.getLive(p, p.rootId, db);
    // The walk starts from the caller's own root (a live folder: it cannot be moved or trashed), so it never leaves the drive.
    const item = await itemRepository.findLiveByPath(db, p.rootId, names);
    if (!item) throw new CofferError('NOT_FOUND');
    return item;
  }

  /** Splits a path into its parent folder and the (validated) last name. */
  async resolveParentOf(p: Principal, path: string, db: Executor = this.deps.db): Promise<{ parent: ItemRow; name: string }> {
    const names = parsePath(path);
    const name = names.pop();
    if (!name) throw new CofferError('ROOT_IMMUTABLE');
    const parent = await this.resolvePath(p, names.join('/'), db);
    if (parent.kind !== 'folder') throw new CofferError('NOT_A_FOLDER');
    return { parent, name };
  }

  async pathOf(p: Principal, item: ItemRow): Promise<string> {
    if (item.id === p.rootId) return '/';
    const up = await itemRepository.ancestors(this.deps.db, item.id);
    return '/' + [...up.reverse().slice(1).map((a) => a.name), item.name].join('/');
  }

  async createFolder(p: Principal, parentId: string, rawName: string): Promise<ItemRow> {
    const name = normalizeName(rawName);
    return this.log.commit(this.deps.db, p.userId, async (trx, record) => {
      await this.getLiveFolder(p, parentId, trx);
      if (await itemRepository.findLiveChild(trx, parentId, name)) throw new CofferError('NAME_CONFLICT', undefined, { name });
      const now = this.deps.clock.now();
      const row: ItemRow = {
        id: newId(), owner_id: p.userId, parent_id: parentId, name, kind: 'folder', size: 0, content_hash: null,
        version_id: null, rev: 1, created_at: now, modified_at: now, trashed_at: null, trash_batch: null,
      };
      await insertMappingConflict(trx, row);
      await record([{ op: 'create', item: row }]);
      return row;
    });
  }

  async list(p: Principal, folderId: string, opts: ListOptions): Promise<{ items: ItemRow[]; total: number }> {
    await this.getLiveFolder(p, folderId);
    const [items, total] = await Promise.all([
      itemRepository.listLiveChildren(this.deps.db, folderId, opts),
      itemRepository.countLiveChildren(this.deps.db, folderId),
    ]);
    return { items, total };
  }

  /** Rename and/or move. `ifRev` makes it conditional: a stale caller gets VERSION_CONFLICT. */
  async relocate(p: Principal, id: string, to: { parentId?: string; name?: string; ifRev?: number }): Promise<ItemRow> {
    if (id === p.rootId) throw new CofferError('ROOT_IMMUTABLE');
    const name = to.name === undefined ? undefined : normalizeName(to.name);
    return this.log.commit(this.deps.db, p.userId, async (trx, record) => {
      const item = await this.getLive(p, id, trx);
      if (to.ifRev !== undefined && item.rev !== to.ifRev) throw new CofferError('VERSION_CONFLICT', undefined, { currentRev: item.rev });
      const parentId = to.parentId ?? item.parent_id!;
      const newName = name ?? item.name;
      if (parentId !== item.parent_id) {
        await this.getLiveFolder(p, parentId, trx);
        if (item.kind === 'folder') await assertNotInside(trx, parentId, item.id);
      }
      if (parentId === item.parent_id && newName === item.name) return item;
      const clash = await itemRepository.findLiveChild(trx, parentId, newName);
      if (clash && clash.id !== item.id) throw new CofferError('NAME_CONFLICT', undefined, { name: newName });
      const now = this.deps.clock.now();
      try {
        const ok = await itemRepository.relocate(trx, item.id, { parentId, name: newName, now, expectedRev: item.rev });
        if (!ok) throw new CofferError('VERSION_CONFLICT');
      } catch (e) {
        if (isUniqueViolation(e)) throw new CofferError('NAME_CONFLICT', undefined, { name: newName });
        throw e;
      }
      const moved = { ...item, parent_id: parentId, name: newName, modified_at: now, rev: item.rev + 1 };
      await record([{ op: 'move', item: moved }]);
      return moved;
    });
  }

  /** Copies a file or a whole folder. File contents are shared manifests: no chunk is stored twice. */
  async copy(p: Principal, id: string, to: { parentId: string; name?: string }): Promise<ItemRow> {
    if (id === p.rootId) throw new CofferError('ROOT_IMMUTABLE');
    const name = to.name === undefined ? undefined : normalizeName(to.name);
    return this.log.commit(this.deps.db, p.userId, async (trx, record) => {
      const source = await this.getLive(p, id, trx);
      await this.getLiveFolder(p, to.parentId, trx);
      if (source.kind === 'folder') await assertNotInside(trx, to.parentId, source.id);
      const newName = name ?? source.name;
      if (await itemRepository.findLiveChild(trx, to.parentId, newName)) throw new CofferError('NAME_CONFLICT', undefined, { name: newName });
      const subtree = await itemRepository.liveSubtree(trx, source.id);
      const bytes = subtree.reduce((n, r) => n + (r.kind === 'file' ? r.size : 0), 0);
      if (!(await userRepository.addUsedBytes(trx, p.userId, bytes))) throw new CofferError('QUOTA_EXCEEDED', undefined, { needed: bytes });
      const now = this.deps.clock.now();
      const newIds = new Map<string, string>();
      let top: ItemRow | undefined;
      const created: ItemRow[] = [];
      for (const r of subtree) {
        const isTop = r.id === source.id;
        const copy: ItemRow = {
          ...r, id: newId(), parent_id: isTop ? to.parentId : newIds.get(r.parent_id!)!, name: isTop ? newName : r.name,
          rev: 1, created_at: now, modified_at: isTop ? now : r.modified_at, version_id: null,
        };
        newIds.set(r.id, copy.id);
        if (r.kind === 'file' && r.version_id) {
          copy.version_id = newId();
          await insertMappingConflict(trx, { ...copy, version_id: null });
          await versionRepository.cloneManifest(trx, r.version_id, {
            id: copy.version_id, item_id: copy.id, owner_id: p.userId, size: r.size, content_hash: r.content_hash ?? '', created_at: now,
          });
          await trx.updateTable('items').set({ version_id: copy.version_id }).where('id', '=', copy.id).execute();
        } else {
          await insertMappingConflict(trx, copy);
        }
        if (isTop) top = copy;
        created.push(copy);
      }
      await record(created.map((item) => ({ op: 'create' as const, item })));
      return top!;
    });
  }

  /** Moves an item (and everything under it) to the recycle bin. */
  async trash(p: Principal, id: string, ifRev?: number): Promise<ItemRow> {
    if (id === p.rootId) throw new CofferError('ROOT_IMMUTABLE');
    return this.log.commit(this.deps.db, p.userId, async (trx, record) => {
      const item = await this.getLive(p, id, trx);
      if (ifRev !== undefined && item.rev !== ifRev) throw new CofferError('VERSION_CONFLICT', undefined, { currentRev: item.rev });
      const subtree = await itemRepository.liveSubtree(trx, item.id);
      const now = this.deps.clock.now();
      await itemRepository.trashSubtree(trx, subtree.map((r) => r.id), item.id, now);
      const gone = subtree.map((r) => ({ ...r, trashed_at: now, trash_batch: item.id, rev: r.rev + 1 }));
      await record(gone.map((g) => ({ op: 'delete' as const, item: g })));
      return gone[0];
    });
  }

  async listTrash(p: Principal, limit: number, offset: number): Promise<ItemRow[]> {
    return itemRepository.listTrashRoots(this.deps.db, p.userId, limit, offset);
  }

  private async getTrashRoot(p: Principal, id: string, db: Executor): Promise<ItemRow> {
    const item = await itemRepository.findById(db, p.userId, id);
    if (!item) throw new CofferError('NOT_FOUND');
    if (item.trashed_at === null || item.trash_batch !== item.id) throw new CofferError('NOT_IN_TRASH');
    return item;
  }

  /**
   * Brings a deleted item back to where it was. If its folder is gone or in the
   * bin too, it comes back to the root; if the name is taken, it gets a
   * " (restored)" suffix rather than replacing anything.
   */
  async restore(p: Principal, id: string): Promise<ItemRow> {
    return this.log.commit(this.deps.db, p.userId, async (trx, record) => {
      const item = await this.getTrashRoot(p, id, trx);
      const members = await itemRepository.batchMembers(trx, item.id);
      const parent = item.parent_id ? await itemRepository.findById(trx, p.userId, item.parent_id) : undefined;
      const parentId = parent && parent.trashed_at === null ? parent.id : p.rootId;
      let name = item.name;
      for (let i = 1; await itemRepository.findLiveChild(trx, parentId, name); i++) name = restoredName(item.name, i);
      const now = this.deps.clock.now();
      if (parentId !== item.parent_id) await trx.updateTable('items').set({ parent_id: parentId }).where('id', '=', item.id).execute();
      await itemRepository.restoreBatch(trx, item.id, name, now);
      const back = (r: ItemRow): ItemRow => r.id === item.id
        ? { ...r, parent_id: parentId, name, trashed_at: null, trash_batch: null, rev: r.rev + 1, modified_at: now }
        : { ...r, trashed_at: null, trash_batch: null, rev: r.rev + 1 };
      // Parents before children, so a client can apply the entries in order.
      const depth = depthsBelow(item.id, members);
      const restored = members.map(back).sort((a, b) => depth.get(a.id)! - depth.get(b.id)!);
      await record(restored.map((r) => ({ op: 'restore' as const, item: r })));
      return restored.find((r) => r.id === item.id)!;
    });
  }

  /** Deletes a bin entry for good. Its chunks are freed by the garbage collector. */
  async purge(p: Principal, id: string): Promise<void> {
    await this.deps.db.transaction().execute(async (trx) => {
      const item = await this.getTrashRoot(p, id, trx);
      await purgeBatch(trx, p.userId, item.id);
    });
  }

  async emptyTrash(p: Principal): Promise<number> {
    let n = 0;
    for (;;) {
      const roots = await itemRepository.listTrashRoots(this.deps.db, p.userId, 100, 0);
      if (!roots.length) return n;
      for (const r of roots) {
        await this.deps.db.transaction().execute((trx) => purgeBatch(trx, r.owner_id, r.id));
        n++;
      }
    }
  }
}

/** Removes a trash batch's rows and gives their bytes back to the owner's quota. */
export async function purgeBatch(trx: Executor, ownerId: string, rootId: string): Promise<boolean> {
  // Under the drive lock, look again: the entry may have been restored or purged since it was listed.
  await changeRepository.lockDrive(trx, ownerId);
  const root = await itemRepository.findById(trx, ownerId, rootId);
  if (!root || root.trashed_at === null || root.trash_batch !== root.id) return false;
  const members = await itemRepository.batchMembers(trx, root.id);
  // Items trashed earlier on their own, below this one, go too: their parent disappears.
  const all = new Map(members.map((m) => [m.id, m]));
  const below = await trx.withRecursive('sub', (qc) => qc.selectFrom('items').selectAll().where('id', '=', root.id)
    .unionAll((qb) => qb.selectFrom('items').innerJoin('sub', 'sub.id', 'items.parent_id').selectAll('items')))
    .selectFrom('sub').selectAll().execute() as ItemRow[];
  for (const b of below) all.set(b.id, b);
  const depth = depthsBelow(root.id, [...all.values()]);
  const rows = [...all.values()].sort((a, b) => depth.get(b.id)! - depth.get(a.id)!);
  // Only the bytes of rows this transaction deleted: two purges of one batch at once (two "empty trash"
  // requests, on one process or several) must not both give the bytes back.
  const deleted = await itemRepository.deleteRows(trx, rows.map((r) => r.id));
  const bytes = rows.reduce((n, r) => n + (r.kind === 'file' && deleted.has(r.id) ? r.size : 0), 0);
  if (bytes !== 0) await userRepository.addUsedBytes(trx, root.owner_id, -bytes);
  return true;
}

/** How deep each row sits below `rootId`, counting only rows in the set (the root is 0). */
function depthsBelow(rootId: string, rows: ItemRow[]): Map<string, number> {
  const byId = new Map(rows.map((r) => [r.id, r]));
  const depth = new Map<string, number>();
  const of = (r: ItemRow): number => {
    const known = depth.get(r.id);
    if (known !== undefined) return known;
    const parent = r.id === rootId || !r.parent_id ? undefined : byId.get(r.parent_id);
    const d = parent ? of(parent) + 1 : 0;
    depth.set(r.id, d);
    return d;
  };
  rows.forEach(of);
  return depth;
}

function restoredName(name: string, i: number): string {
  const dot = name.lastIndexOf('.');
  const suffix = i === 1 ? ' (restored)' : ` (restored ${i})`;
  return dot > 0 ? name.slice(0, dot) + suffix + name.slice(dot) : name + suffix;
}

async function insertMappingConflict(db: Executor, row: ItemRow): Promise<void> {
  try {
    await itemRepository.insert(db, row);
  } catch (e) {
    if (isUniqueViolation(e)) throw new CofferError('NAME_CONFLICT', undefined, { name: row.name });
    throw e;
  }
}

/** Refuses to put a folder inside itself or one of its descendants. */
async function assertNotInside(db: Executor, targetFolderId: string, movingId: string): Promise<void> {
  if (targetFolderId === movingId) throw new CofferError('MOVE_INTO_ITSELF');
  const up = await itemRepository.ancestors(db, targetFolderId);
  if (up.some((a) => a.id === movingId)) throw new CofferError('MOVE_INTO_ITSELF');
}
