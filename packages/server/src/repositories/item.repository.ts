/**
 * Files and folders (see ItemsTable). "Live" means not in the recycle bin.
 * Writes that depend on what the caller last saw take an expected `rev`
 * and change nothing when it moved on; the service turns that into a 412.
 */
import { sql, type Compilable, type Kysely, type Selectable } from 'kysely';
import type { ItemsTable } from '../db/schema.ts';
import type { Executor } from './executor.ts';
import { preparedInsert, preparedQuery, type Params } from '../db/prepared-query.ts';

export type ItemRow = Selectable<ItemsTable>;
export type SortKey = 'name' | 'modified' | 'size';

const SORT_COLUMN = { name: 'name', modified: 'modified_at', size: 'size' } as const;

const itemById = preparedQuery((db, p: Params<{ ownerId: string; id: string }>) => db.selectFrom('items').selectAll()
  .where('id', '=', p('id')).where('owner_id', '=', p('ownerId')));
/** Every new file and folder. */
const insertItem = preparedInsert('items');
/** One name in one folder: conflict checks, an upload's target. */
const liveChildByName = preparedQuery((db, p: Params<{ parentId: string; name: string }>) => db.selectFrom('items').selectAll()
  .where('parent_id', '=', p('parentId')).where('name', '=', p('name')).where('trashed_at', 'is', null));

/** A path is walked this many names per statement (a deeper one in several). */
export const WALK_DEPTH = 8;
type WalkParams = Record<string, string>;
/**
 * The live item at `names` under `from`, in one statement: level i is the live child named names[i] of level
 * i − 1 (its unique live-name index is searched at every level), and every level but the last is a folder.
 * Built once per number of names.
 */
const walks = Array.from({ length: WALK_DEPTH + 1 }, (_, depth) => depth === 0 ? null : preparedQuery((db, p: Params<WalkParams>) => {
  // Aliases l0…l<depth-1> are made up at run time, which Kysely's types cannot follow.
  let q: any = (db as unknown as Kysely<any>).selectFrom('items as l0')
    .where('l0.parent_id', '=', p('from')).where('l0.name', '=', p('n0')).where('l0.trashed_at', 'is', null);
  for (let i = 1; i < depth; i++) {
    q = q.innerJoin(`items as l${i}`, (j: any) => j.onRef(`l${i}.parent_id`, '=', `l${i - 1}.id`)
      .on(`l${i}.name`, '=', p(`n${i}`)).on(`l${i}.trashed_at`, 'is', null))
      .where(`l${i - 1}.kind`, '=', sql.lit('folder'));
  }
  return q.selectAll(`l${depth - 1}`) as Compilable<ItemRow>;
}));

export const itemRepository = {
  /**
   * The live item at this path of names below the folder `from` (not `from` itself), through live folders only:
   * WALK_DEPTH names per statement.
   */
  async findLiveByPath(db: Executor, from: string, names: readonly string[]): Promise<ItemRow | undefined> {
    let item: ItemRow | undefined;
    for (let i = 0; i < names.length; i += WALK_DEPTH) {
      if (item && item.kind !== 'folder') return undefined;
      const hop = names.slice(i, i + WALK_DEPTH);
      const params: WalkParams = { from: item?.id ?? from };
      hop.forEach((n, k) => { params[`n${k}`] = n; });
      item = await walks[hop.length]!.first(db, params);
      if (!item) return undefined;
    }
    return item;
  },

  async insert(db: Executor, row: ItemRow): Promise<void> {
    await insertItem.run(db, row);
  },

  async findById(db: Executor, ownerId: string, id: string): Promise<ItemRow | undefined> {
    return itemById.first(db, { ownerId, id });
  },

  async findLiveChild(db: Executor, parentId: string, name: string): Promise<ItemRow | undefined> {
    return liveChildByName.first(db, { parentId, name });
  },

  async listLiveChildren(db: Executor, parentId: string, opts: { sort: SortKey; order: 'asc' | 'desc'; limit: number; offset: number }): Promise<ItemRow[]> {
    // Folders first, then the chosen key; id breaks ties so pages never overlap.
    return db.selectFrom('items').selectAll()
      .where('parent_id', '=', parentId).where('trashed_at', 'is', null)
      .orderBy(sql`case when kind = 'folder' then 0 else 1 end`)
      .orderBy(SORT_COLUMN[opts.sort], opts.order)
      .orderBy('id', opts.order)
      .limit(opts.limit).offset(opts.offset)
      .execute();
  },

  async countLiveChildren(db: Executor, parentId: string): Promise<number> {
    const r = await db.selectFrom('items').select((eb) => eb.fn.countAll<number>().as('n'))
      .where('parent_id', '=', parentId).where('trashed_at', 'is', null).executeTakeFirstOrThrow();
    return Number(r.n);
  },

  /** Renames and/or moves; bumps rev. Returns false when `expectedRev` is stale. */
  async relocate(db: Executor, id: string, to: { parentId: string; name: string; now: number; expectedRev?: number }): Promise<boolean> {
    let q = db.updateTable('items')
      .set((eb) => ({ parent_id: to.parentId, name: to.name, modified_at: to.now, rev: eb('rev', '+', 1) }))
      .where('id', '=', id).where('trashed_at', 'is', null);
    if (to.expectedRev !== undefined) q = q.where('rev', '=', to.expectedRev);
    return (await q.executeTakeFirst()).numUpdatedRows > 0n;
  },

  /** Points a file at a new current version. Returns false when `expectedRev` is stale. */
  async setContent(db: Executor, id: string, c: { versionId: string; size: number; contentHash: string; now: number; expectedRev?: number }): Promise<boolean> {
    let q = db.updateTable('items')
      .set((eb) => ({ version_id: c.versionId, size: c.size, content_hash: c.contentHash, modified_at: c.now, rev: eb('rev', '+', 1) }))
      .where('id', '=', id).where('trashed_at', 'is', null);
    if (c.expectedRev !== undefined) q = q.where('rev', '=', c.expectedRev);
    return (await q.executeTakeFirst()).numUpdatedRows > 0n;
  },

  /** The item and every live descendant, the item first (recursive CTE, both dialects). */
  async liveSubtree(db: Executor, id: string): Promise<ItemRow[]> {
    return db.withRecursive('sub', (qc) => qc.selectFrom('items').selectAll().where('id', '=', id)
      .unionAll((qb) => qb.selectFrom('items').innerJoin('sub', 'sub.id', 'items.parent_id')
        .selectAll('items').where('items.trashed_at', 'is', null)))
      .selectFrom('sub').selectAll().execute() as Promise<ItemRow[]>;
  },

  /** Ancestors of an item, nearest first, ending at the root. */
  async ancestors(db: Executor, id: string): Promise<ItemRow[]> {
    const rows = await db.withRecursive('up', (qc) => qc.selectFrom('items').selectAll().where('id', '=', id)
      .unionAll((qb) => qb.selectFrom('items').innerJoin('up', 'up.parent_id', 'items.id').selectAll('items')))
      .selectFrom('up').selectAll().execute() as ItemRow[];
    return rows.slice(1);
  },

  async trashSubtree(db: Executor, ids: string[], batch: string, now: number): Promise<void> {
    for (let i = 0; i < ids.length; i += 500) {
      await db.updateTable('items').set((eb) => ({ trashed_at: now, trash_batch: batch, rev: eb('rev', '+', 1) }))
        .where('id', 'in', ids.slice(i, i + 500)).where('trashed_at', 'is', null).execute();
    }
  },

  async restoreBatch(db: Executor, batch: string, rootNewName: string, now: number): Promise<void> {
    await db.updateTable('items').set({ name: rootNewName, modified_at: now }).where('id', '=', batch).execute();
    await db.updateTable('items').set((eb) => ({ trashed_at: null, trash_batch: null, rev: eb('rev', '+', 1) }))
      .where('trash_batch', '=', batch).execute();
  },

  /** The items a user deleted (not their descendants), newest first. */
  async listTrashRoots(db: Executor, ownerId: string, limit: number, offset: number): Promise<ItemRow[]> {
    return db.selectFrom('items').selectAll()
      .where('owner_id', '=', ownerId).where('trashed_at', 'is not', null).whereRef('trash_batch', '=', 'id')
      .orderBy('trashed_at', 'desc').orderBy('id').limit(limit).offset(offset).execute();
  },

  async trashRootsOlderThan(db: Executor, cutoff: number, limit: number): Promise<ItemRow[]> {
    return db.selectFrom('items').selectAll()
      .where('trashed_at', '<', cutoff).whereRef('trash_batch', '=', 'id').limit(limit).execute();
  },

  /** Every item of a trash batch (the deleted item and what it hid). */
  async batchMembers(db: Executor, batch: string): Promise<ItemRow[]> {
    return db.selectFrom('items').selectAll().where('trash_batch', '=', batch).execute();
  },

  /** Deletes rows for good; children before parents. Versions and manifests go by cascade. */
  /** Returns the ids this call actually deleted: a concurrent purge of the same rows (another request or process) may have won. */
  async deleteRows(db: Executor, rowsDeepestFirst: string[]): Promise<Set<string>> {
    const deleted = new Set<string>();
    for (const id of rowsDeepestFirst) {
      // Only items in the bin: a live item is never deleted for good (its parent's delete then fails instead).
      const r = await db.deleteFrom('items').where('id', '=', id).where('trashed_at', 'is not', null).executeTakeFirst();
      if (Number(r.numDeletedRows) > 0) deleted.add(id);
    }
    return deleted;
  },
};
