/**
 * A pure, in-memory executor of plans: the server and the sync folder as
 * plain trees. Property tests and the simulation run plans through it;
 * the real executors (transfer/, the local file system) follow the same
 * contract: each step checks what it expects, changes one side, and
 * records the agreement in the base (record.ts).
 */
import type { Op, Plan } from './plan.ts';
import { agreedBase } from './record.ts';
import { isLocalId, type Node, type Tree, treeOf } from './tree.ts';

export interface World {
  remote: Map<string, Node>;
  local: Map<string, Node>;
  base: Map<string, Node>;
  rootId: string;
  /** Every content the server ever stored (its version history and recycle bin keep them). */
  serverHistory: Set<string>;
  nextServerId: number;
}

export function worldOf(remote: Tree, local: Tree, base: Tree): World {
  const history = new Set<string>();
  for (const n of [...remote.nodes.values(), ...base.nodes.values()]) if (n.hash) history.add(n.hash);
  return { remote: new Map(remote.nodes), local: new Map(local.nodes), base: new Map(base.nodes), rootId: remote.rootId, serverHistory: history, nextServerId: 1 };
}

export function trees(w: World): { remote: Tree; local: Tree; base: Tree } {
  return { remote: treeOf(w.rootId, w.remote.values()), local: treeOf(w.rootId, w.local.values()), base: treeOf(w.rootId, w.base.values()) };
}

/** Carries out a plan; `stopAfter` simulates a crash after that many steps. Returns the number of steps done. */
export function execute(w: World, p: Plan, stopAfter = Infinity): number {
  for (const { id, base } of p.settle) {
    if (base) w.base.set(id, base);
    else w.base.delete(id);
  }
  for (const { from, to } of p.rekey) {
    rekeyLocal(w, from, to);
    record(w, from);
    record(w, to);
  }
  /** Local ids that became server ids during this plan. */
  const ids = new Map<string, string>();
  const resolve = (id: string) => ids.get(id) ?? id;
  let done = 0;
  for (const op of p.ops) {
    if (done >= stopAfter) break;
    const side = op.side === 'remote' ? w.remote : w.local;
    const id = resolve(op.id);
    const parentId = 'parentId' in op ? resolve(op.parentId) : undefined;
    if (!precondition(side, op, id)) continue;
    if (op.type === 'delete') side.delete(id);
    else if (op.type === 'move') side.set(id, { ...side.get(id)!, parentId: parentId!, name: op.name });
    else if (op.type === 'mkdir' || (op.type === 'write' && !side.has(id))) {
      // A new item: on the server it gets a server id, which the local side then uses too.
      let newId = id;
      if (op.side === 'remote' && isLocalId(id)) {
        newId = `srv:${w.nextServerId++}`;
        ids.set(op.id, newId);
        rekeyLocal(w, id, newId);
      }
      side.set(newId, op.type === 'mkdir'
        ? { id: newId, parentId: parentId!, name: op.name, kind: 'folder', hash: null, size: 0 }
        : { id: newId, parentId: parentId!, name: op.name, kind: 'file', hash: op.hash, size: op.size });
      record(w, newId);
      done++;
      if (op.side === 'remote' && op.type === 'write') w.serverHistory.add(op.hash);
      continue;
    } else side.set(id, { ...side.get(id)!, hash: op.hash, size: op.size });
    if (op.side === 'remote' && op.type === 'write') w.serverHistory.add(op.hash);
    record(w, id);
    done++;
  }
  return done;
}

/** What an executor checks before a step: the item is as the plan saw it. */
function precondition(side: Map<string, Node>, op: Op, id: string): boolean {
  const cur = side.get(id);
  if (op.type === 'delete' || (op.type === 'write' && op.expectHash !== null)) return cur !== undefined && cur.hash === op.expectHash;
  if (op.type === 'move') return cur !== undefined;
  return true;
}

function record(w: World, id: string): void {
  const b = agreedBase(w.base.get(id), w.remote.get(id), w.local.get(id));
  if (b) w.base.set(id, b);
  else w.base.delete(id);
}

function rekeyLocal(w: World, from: string, to: string): void {
  const n = w.local.get(from);
  if (!n) return;
  w.local.delete(from);
  w.local.set(to, { ...n, id: to });
  for (const [id, c] of w.local) if (c.parentId === from) w.local.set(id, { ...c, parentId: to });
}
