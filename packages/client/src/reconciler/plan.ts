/**
 * The planner: pure. Given the three trees it merges them (merge.ts) and
 * returns the operations that bring each side to the merged tree, in an
 * order in which every step is valid on its own (parent exists, name free,
 * folder empty before it is deleted). Executors carry them out and record
 * each in the base as it completes; the next round plans from there, so a
 * crash between any two steps loses nothing.
 *
 * Every operation says what it expects to find (`expectHash`): an executor
 * that finds something else (the user edited the file meanwhile) skips the
 * step, and the next round plans again from the new state.
 */
import { merge, type MergeOptions, type MergeResult } from './merge.ts';
import { agreedBase } from './record.ts';
import { depthOf, type Kind, type Node, sameLocation, type Tree } from './tree.ts';

export type Side = 'remote' | 'local';

export type Op =
  | { side: Side; type: 'mkdir'; id: string; parentId: string; name: string }
  /** remote: upload the local file; local: download the remote file. `expectHash`: what is there now and may be replaced (null: nothing). */
  | { side: Side; type: 'write'; id: string; parentId: string; name: string; hash: string; size: number; expectHash: string | null }
  | { side: Side; type: 'move'; id: string; parentId: string; name: string }
  /** Removes an item whose content (a file) or whole subtree (a folder, by then empty) is equal to the base. */
  | { side: Side; type: 'delete'; id: string; kind: Kind; expectHash: string | null };

export interface Plan extends MergeResult {
  /**
   * Base entries already out of date before any step: both sides made the
   * same change, or deleted the same item. Recorded first, so the base never
   * holds a state neither side has (which would misread a later change).
   */
  settle: { id: string; base: Node | null }[];
  /** Bookkeeping before any step: local items that are remote items (adopted), local content split off as conflict copies. */
  rekey: { from: string; to: string }[];
  /** Local steps first (they move conflict copies out of the way), then remote ones. */
  ops: Op[];
}

export function plan(remote: Tree, local: Tree, base: Tree, opts: MergeOptions): Plan {
  const result = merge(remote, local, base, opts);
  const rekey = [
    ...result.conflicts.map((c) => ({ from: c.id, to: c.copyId })),
    ...[...result.adopted].map(([from, to]) => ({ from, to })),
  ];
  const key = opts.caseInsensitive ? (n: string) => n.toLowerCase() : (n: string) => n;
  const localOps = schedule(result.local, result.merged, diff('local', result.local, result.merged), key);
  const remoteOps = schedule(remote, result.merged, diff('remote', remote, result.merged), (n) => n);
  return { ...result, settle: settle(remote, local, base), rekey, ops: [...localOps, ...remoteOps] };
}

function settle(remote: Tree, local: Tree, base: Tree): { id: string; base: Node | null }[] {
  const out: { id: string; base: Node | null }[] = [];
  const ids = new Set(base.nodes.keys());
  for (const id of remote.nodes.keys()) ids.add(id);
  for (const id of ids) {
    const b = base.nodes.get(id);
    const r = remote.nodes.get(id);
    const l = local.nodes.get(id);
    // Where both sides are the base, the base stays (what agreedBase would say, without building it).
    if (b && r && l && sameNode(b, r) && sameNode(b, l)) continue;
    const next = agreedBase(b, r, l);
    if (!sameNode(b, next)) out.push({ id, base: next ?? null });
  }
  return out;
}

function sameNode(a: Node | undefined, b: Node | undefined): boolean {
  if (!a || !b) return a === b;
  return a.parentId === b.parentId && a.name === b.name && a.hash === b.hash && a.kind === b.kind;
}

/** The steps that turn `side` into `target`, unordered. */
function diff(side: Side, current: Tree, target: Tree): Op[] {
  const ops: Op[] = [];
  for (const t of target.nodes.values()) {
    if (t.id === target.rootId) continue;
    const c = current.nodes.get(t.id);
    if (!c) {
      ops.push(t.kind === 'folder'
        ? { side, type: 'mkdir', id: t.id, parentId: t.parentId!, name: t.name }
        : { side, type: 'write', id: t.id, parentId: t.parentId!, name: t.name, hash: t.hash!, size: t.size, expectHash: null });
      continue;
    }
    if (!sameLocation(c, t)) ops.push({ side, type: 'move', id: t.id, parentId: t.parentId!, name: t.name });
    if (t.kind === 'file' && c.hash !== t.hash) ops.push({ side, type: 'write', id: t.id, parentId: t.parentId!, name: t.name, hash: t.hash!, size: t.size, expectHash: c.hash });
  }
  for (const c of current.nodes.values()) {
    if (c.id !== current.rootId && !target.nodes.has(c.id)) ops.push({ side, type: 'delete', id: c.id, kind: c.kind, expectHash: c.hash });
  }
  return ops;
}

/** A tree being changed step by step, to check each step's preconditions. Children are indexed by folder and name key. */
class Sim {
  readonly nodes: Map<string, Node>;
  private readonly kids = new Map<string, Map<string, string>>();
  private readonly key: (name: string) => string;
  private readonly rootId: string;
  constructor(tree: Tree, key: (name: string) => string) {
    this.nodes = new Map(tree.nodes);
    this.key = key;
    this.rootId = tree.rootId;
    for (const n of this.nodes.values()) this.link(n);
  }
  private link(n: Node): void {
    if (n.parentId === null) return;
    let m = this.kids.get(n.parentId);
    if (!m) this.kids.set(n.parentId, (m = new Map()));
    m.set(this.key(n.name), n.id);
  }
  private unlink(n: Node): void {
    if (n.parentId === null) return;
    const m = this.kids.get(n.parentId);
    if (m && m.get(this.key(n.name)) === n.id) m.delete(this.key(n.name));
  }
  childNamed(parentId: string, name: string): Node | undefined {
    const id = this.kids.get(parentId)?.get(this.key(name));
    return id === undefined ? undefined : this.nodes.get(id);
  }
  hasChildren(id: string): boolean {
    return (this.kids.get(id)?.size ?? 0) > 0;
  }
  isFolder(id: string): boolean {
    return this.nodes.get(id)?.kind === 'folder';
  }
  /** Whether `id` is `ancestor` or inside it. */
  within(id: string, ancestor: string): boolean {
    for (let cur = this.nodes.get(id), guard = 0; cur && guard <= this.nodes.size; guard++) {
      if (cur.id === ancestor) return true;
      if (cur.id === this.rootId || cur.parentId === null) return false;
      cur = this.nodes.get(cur.parentId);
    }
    return false;
  }
  /** Why an op cannot run now: the node in the way (or true for another reason), or null when it can. */
  blocker(op: Op): Node | true | null {
    if (op.type === 'delete') return op.kind === 'folder' && this.hasChildren(op.id) ? true : null;
    if (op.type === 'write' && this.nodes.has(op.id)) return null; // new content of an existing file
    if (!this.isFolder(op.parentId)) return true;
    if (op.type === 'move' && this.within(op.parentId, op.id)) return true;
    const other = this.childNamed(op.parentId, op.name);
    return other && other.id !== op.id ? other : null;
  }
  apply(op: Op): void {
    const cur = this.nodes.get(op.id);
    let next: Node | undefined;
    if (op.type === 'delete') next = undefined;
    else if (op.type === 'mkdir') next = { id: op.id, parentId: op.parentId, name: op.name, kind: 'folder', hash: null, size: 0 };
    else if (op.type === 'move') next = { ...cur!, parentId: op.parentId, name: op.name };
    else if (cur) next = { ...cur, hash: op.hash, size: op.size }; // new content; the item stays where it is
    else next = { id: op.id, parentId: op.parentId, name: op.name, kind: 'file', hash: op.hash, size: op.size };
    if (cur) this.unlink(cur);
    if (next) { this.nodes.set(op.id, next); this.link(next); } else this.nodes.delete(op.id);
  }
}

/**
 * Orders steps so each is valid when it runs: moves and creates top-down,
 * deletes bottom-up, and a step whose name is taken by an item that leaves
 * later waits for it. A swap (a→b while b→a) moves one item to a temporary
 * name first.
 */
function schedule(start: Tree, target: Tree, ops: Op[], key: (name: string) => string): Op[] {
  const sim = new Sim(start, key);
  const depth = (op: Op) => (op.type === 'delete' ? -depthOf(start, op.id) : depthOf(target, op.id));
  // Deletes of files first (they free names), then moves and creates top-down, then folder deletes bottom-up.
  const rank = (op: Op) => (op.type === 'delete' ? (op.kind === 'file' ? 0 : 2) : 1);
  let pending = [...ops].sort((a, b) => rank(a) - rank(b) || depth(a) - depth(b));
  const out: Op[] = [];
  let temp = 0;
  while (pending.length) {
    const next: Op[] = [];
    let progressed = false;
    for (const op of pending) {
      if (sim.blocker(op) === null) {
        sim.apply(op);
        out.push(op);
        progressed = true;
      } else next.push(op);
    }
    pending = next;
    if (progressed || !pending.length) continue;
    // Stuck: some name is held by an item that is itself going to move or go away. Park it under a temporary name.
    const held = pending.map((op) => sim.blocker(op)).find((b): b is Node => b !== null && b !== true && pending.some((p) => p.id === b.id));
    if (!held) throw new Error(`planner: cannot order ${pending.length} step(s), first ${JSON.stringify(pending[0])}`);
    const park: Op = { side: pending[0].side, type: 'move', id: held.id, parentId: held.parentId!, name: `${held.name}.coffer-move-${++temp}` };
    sim.apply(park);
    out.push(park);
  }
  return out;
}
