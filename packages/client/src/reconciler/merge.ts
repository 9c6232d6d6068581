/**
 * The merge: from the remote, local and base trees, the tree both sides
 * should end up with. The planner then only diffs this target against each
 * side. The rules, item by item (the change matrix):
 *
 * - changed on one side only: that side's state wins;
 * - deleted on both: gone;
 * - deleted on one side, edited on the other: the edit is kept (the item is
 *   re-created where it was deleted); deleted vs only moved: the delete wins
 *   (the content is the base's, which the server keeps in its recycle bin);
 * - moved on both: the remote move wins; moved on one, edited on the other:
 *   both happen;
 * - edited on both with different content: the remote content keeps the
 *   name, the local content becomes a conflict copy next to it;
 * - new on both sides at the same place: one item if both are folders or
 *   both files with the same content; otherwise the local one is renamed
 *   to a conflict name.
 * Then the result is repaired: a kept item whose folder was deleted brings
 * the folder back; a cycle made of moves from both sides undoes a local
 * move; two items left with one name get the local one renamed.
 *
 * Nothing here deletes content that exists on only one side: a delete is
 * only ever carried out on content equal to the base.
 */
import { conflictName } from './conflict-name.ts';
import { changeOf, childrenIndex, isLocalId, type Node, type Tree, treeOf } from './tree.ts';

export interface MergeOptions {
  /** Names conflict copies: "(conflict from <device> <day>)". */
  device: string;
  /** YYYY-MM-DD */
  day: string;
  /** The local file system folds case (macOS, Windows): names differing only in case collide. */
  caseInsensitive?: boolean;
}

export interface ConflictCopy {
  /** The item edited on both sides (it keeps the remote content). */
  id: string;
  /** The local content, now a new item with a conflict name. */
  copyId: string;
}

export interface MergeResult {
  merged: Tree;
  /** The local tree with the merge's re-keying applied (adoptions, conflict copies): what the planner diffs against. */
  local: Tree;
  /** A new local item recognized as a new remote one: local id → remote id. */
  adopted: Map<string, string>;
  conflicts: ConflictCopy[];
  /** Local items renamed because their name was taken: id → new name. */
  renamed: Map<string, string>;
}

export function merge(remote: Tree, local: Tree, base: Tree, opts: MergeOptions): MergeResult {
  const rootId = remote.rootId;
  const m = new Map<string, Node>();
  const localNodes = new Map(local.nodes);
  const conflicts: ConflictCopy[] = [];
  /** Where each merged node's location came from, for cycle repair. */
  const locationFrom = new Map<string, 'remote' | 'local' | 'base'>();

  m.set(rootId, remote.nodes.get(rootId)!);
  const ids = new Set<string>(remote.nodes.keys());
  for (const id of local.nodes.keys()) ids.add(id);
  for (const id of base.nodes.keys()) ids.add(id);
  ids.delete(rootId);
  for (const id of ids) {
    const b = base.nodes.get(id);
    const r = unparked(remote.nodes.get(id), b);
    const l = unparked(local.nodes.get(id), b);
    const rc = changeOf(b, r);
    const lc = changeOf(b, l);
    if (!b) {
      if (r && l) {
        // Both sides know it but the base does not (a lost base): treat as both created.
        m.set(id, { ...r });
        locationFrom.set(id, 'remote');
        if (r.kind === 'file' && r.hash !== l.hash) conflicts.push(copyOf(id, l, localNodes));
      } else if (r) { m.set(id, { ...r }); locationFrom.set(id, 'remote'); }
      else if (l) { m.set(id, { ...l }); locationFrom.set(id, 'local'); }
      continue;
    }
    if (rc.deleted && lc.deleted) continue;
    if (rc.deleted) {
      if (lc.edited) { m.set(id, { ...l! }); locationFrom.set(id, 'local'); }
      continue;
    }
    if (lc.deleted) {
      if (rc.edited) { m.set(id, { ...r! }); locationFrom.set(id, 'remote'); }
      continue;
    }
    const where = rc.moved ? r! : lc.moved ? l! : b;
    locationFrom.set(id, rc.moved ? 'remote' : lc.moved ? 'local' : 'base');
    let content: Node = b;
    if (rc.edited && lc.edited && r!.hash !== l!.hash) {
      content = r!;
      conflicts.push(copyOf(id, l!, localNodes));
    } else if (lc.edited) content = l!;
    else if (rc.edited) content = r!;
    // Unchanged on both sides (most items, most runs): the base node itself (nodes are never changed in place).
    m.set(id, where === b && content === b ? b : { ...b, parentId: where.parentId, name: where.name, hash: content.hash, size: content.size });
  }
  // Conflict copies sit next to the item, under a name chosen in the collision pass.
  for (const c of conflicts) {
    const copy = localNodes.get(c.copyId)!;
    const target = m.get(c.id)!;
    m.set(c.copyId, { ...copy, parentId: target.parentId, name: conflictBase(target.name) });
    locationFrom.set(c.copyId, 'local');
  }

  // Undoing a move for a cycle can point an item at a folder that was deleted: repeat until both hold.
  do restoreParents(m, remote, local, base, locationFrom);
  while (breakCycles(m, rootId, remote, base, locationFrom));
  const adopted = new Map<string, string>();
  const renamed = new Map<string, string>();
  resolveCollisions(m, remote, localNodes, rootId, opts, adopted, renamed);
  for (const c of conflicts) renamed.set(c.copyId, m.get(c.copyId)!.name);
  return { merged: treeOf(rootId, m.values()), local: treeOf(rootId, localNodes.values()), adopted, conflicts, renamed };
}

/**
 * An item the planner parked under a temporary name (plan.ts: `name.coffer-move-N`, to free its
 * name during a swap) whose run was cut off before the item moved on: it is where it was, not
 * renamed to the temporary name (which would otherwise win as that side's rename and stay).
 */
function unparked(n: Node | undefined, b: Node | undefined): Node | undefined {
  if (!n || !b || n.name.length <= b.name.length + PARKED.length || !n.name.startsWith(b.name) || !n.name.startsWith(PARKED, b.name.length)
    || !/^\d+$/.test(n.name.slice(b.name.length + PARKED.length))) return n;
  return { ...n, name: b.name };
}

const CONFLICT_MARK = '\u0000conflict:';
/** What plan.ts appends to a name it parks an item under. */
const PARKED = '.coffer-move-';

/** The local content of an item edited on both sides becomes its own local item. */
function copyOf(id: string, l: Node, localNodes: Map<string, Node>): ConflictCopy {
  // An earlier copy of this item may still be here under its local id (not uploaded yet): never reuse that id.
  let copyId = `local:conflict:${id}`;
  for (let n = 2; localNodes.has(copyId); n++) copyId = `local:conflict:${id}:${n}`;
  localNodes.delete(id);
  localNodes.set(copyId, { ...l, id: copyId });
  return { id, copyId };
}

function conflictBase(name: string): string {
  return CONFLICT_MARK + name;
}

/** A kept item whose parent is gone brings the parent back (from whichever side still has it). */
function restoreParents(m: Map<string, Node>, remote: Tree, local: Tree, base: Tree, from: Map<string, string>): void {
  for (let changed = true; changed;) {
    changed = false;
    for (const n of [...m.values()]) {
      if (n.parentId === null || m.has(n.parentId)) continue;
      const p = local.nodes.get(n.parentId) ?? remote.nodes.get(n.parentId) ?? base.nodes.get(n.parentId);
      if (!p) throw new Error(`merge: parent ${n.parentId} of ${n.id} is in no tree`);
      m.set(p.id, { ...p });
      from.set(p.id, local.nodes.has(p.id) ? 'local' : remote.nodes.has(p.id) ? 'remote' : 'base');
      changed = true;
    }
  }
}

/** Moves from both sides can make a cycle (remote: A into B; local: B into A): undo the local move. */
function breakCycles(m: Map<string, Node>, rootId: string, remote: Tree, base: Tree, from: Map<string, string>): boolean {
  /** Items already seen to lead to the root or out of the tree: a walk that meets one is not a cycle. */
  const settled = new Set<string>();
  for (const start of [...m.keys()]) {
    if (settled.has(start)) continue;
    const seen: string[] = [];
    let cur = m.get(start);
    while (cur && cur.id !== rootId && !settled.has(cur.id) && !seen.includes(cur.id)) {
      seen.push(cur.id);
      cur = cur.parentId === null ? undefined : m.get(cur.parentId);
    }
    if (!cur || cur.id === rootId || settled.has(cur.id)) {
      for (const id of seen) settled.add(id);
      continue;
    }
    const cycle = seen.slice(seen.indexOf(cur.id));
    // Undo a local move: an item with a place to go back to (a new local folder in the cycle has none).
    const placed = (id: string) => remote.nodes.has(id) || base.nodes.has(id);
    const victim = cycle.find((id) => from.get(id) === 'local' && placed(id)) ?? cycle.find(placed) ?? cycle[0];
    const back = remote.nodes.get(victim) ?? base.nodes.get(victim)!;
    m.set(victim, { ...m.get(victim)!, parentId: back.parentId, name: back.name });
    from.set(victim, 'remote');
    return true;
  }
  return false;
}

/**
 * Two items with one name in one folder. A new local item equal to a new
 * remote one (both folders, or files with the same content) becomes that
 * item; otherwise the item that is not already there on the server is
 * renamed (a local one first).
 */
function resolveCollisions(m: Map<string, Node>, remote: Tree, localNodes: Map<string, Node>, rootId: string, opts: MergeOptions,
  adopted: Map<string, string>, renamed: Map<string, string>): void {
  const key = (name: string) => (opts.caseInsensitive ? name.toLowerCase() : name);
  for (let pass = 0; pass < 1000; pass++) {
    let changed = false;
    const reparent = new Map<string, string>();
    for (const [parentId, kids] of childrenIndex({ rootId, nodes: m })) {
      // An item adopted in this pass: its children move under the adopter after the pass and are settled there in the next.
      if (reparent.has(parentId)) continue;
      // Most folders have nothing to settle: no name twice, no conflict copy to name.
      const keys = new Set<string>();
      let settle = false;
      for (const k of kids) {
        const kk = key(k.name);
        if (keys.has(kk) || k.name.startsWith(CONFLICT_MARK)) { settle = true; break; }
        keys.add(kk);
      }
      if (!settle) continue;
      const byName = new Map<string, Node[]>();
      for (const k of kids) {
        const list = byName.get(key(k.name)) ?? [];
        list.push(k);
        byName.set(key(k.name), list);
      }
      const taken = new Set(kids.map((k) => key(k.name)));
      for (const [k, stale] of byName) {
        // Earlier groups' adoptions may have moved or renamed members: use the current nodes.
        const group = stale.map((g) => m.get(g.id)).filter((g): g is Node => g !== undefined && g.parentId === parentId && key(g.name) === k);
        const pending = group.filter((n) => !n.name.startsWith(CONFLICT_MARK));
        if (group.length < 2 && pending.length === group.length) continue;
        // Who keeps the name: the item the server already has there, else a remote item, else the first.
        const atPlace = (n: Node) => { const r = remote.nodes.get(n.id); return r !== undefined && r.parentId === parentId && key(r.name) === key(n.name); };
        const sorted = [...pending].sort((a, b) => Number(atPlace(b)) - Number(atPlace(a)) || Number(isLocalId(a.id)) - Number(isLocalId(b.id)) || a.id.localeCompare(b.id));
        const keeper = sorted[0];
        for (const n of [...sorted.slice(1), ...group.filter((g) => g.name.startsWith(CONFLICT_MARK))]) {
          if (keeper && canAdopt(keeper, n, remote, localNodes)) {
            adopt(m, localNodes, n.id, keeper.id, adopted, reparent);
          } else {
            const original = n.name.startsWith(CONFLICT_MARK) ? n.name.slice(CONFLICT_MARK.length) : n.name;
            const name = conflictName(original, opts.device, opts.day, (c) => taken.has(key(c)));
            taken.add(key(name));
            m.set(n.id, { ...n, name });
            if (!n.name.startsWith(CONFLICT_MARK)) renamed.set(n.id, name);
          }
          changed = true;
        }
      }
    }
    reparentChildren(m, reparent);
    reparentChildren(localNodes, reparent);
    if (!changed) return;
  }
  throw new Error('merge: name collisions did not settle');
}

/** A new local item that is the same as a remote item the local side does not have, at the same place. */
function canAdopt(keeper: Node, n: Node, remote: Tree, localNodes: Map<string, Node>): boolean {
  if (!isLocalId(n.id) || n.id.startsWith('local:conflict:') || isLocalId(keeper.id) || !remote.nodes.has(keeper.id) || localNodes.has(keeper.id)) return false;
  if (keeper.kind !== n.kind) return false;
  return keeper.kind === 'folder' || keeper.hash === n.hash;
}

/**
 * The new local item becomes the remote one. Its children follow at the end of
 * the pass (`reparent`), in one sweep: moving them here, one scan of every node
 * per adoption, made linking a folder whose 100,000 files the drive already
 * holds take 7 minutes.
 */
function adopt(m: Map<string, Node>, localNodes: Map<string, Node>, localId: string, remoteId: string, adopted: Map<string, string>,
  reparent: Map<string, string>): void {
  adopted.set(localId, remoteId);
  m.delete(localId);
  const l = localNodes.get(localId)!;
  localNodes.delete(localId);
  localNodes.set(remoteId, { ...l, id: remoteId });
  reparent.set(localId, remoteId);
}

/** Moves the children of adopted items under the items that adopted them. */
function reparentChildren(nodes: Map<string, Node>, reparent: Map<string, string>): void {
  if (reparent.size === 0) return;
  for (const [id, n] of nodes) {
    const to = n.parentId === null ? undefined : reparent.get(n.parentId);
    if (to !== undefined) nodes.set(id, { ...n, parentId: to });
  }
}
