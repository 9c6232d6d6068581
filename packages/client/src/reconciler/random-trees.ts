/**
 * Random tree triples for property tests and the simulation: a base tree,
 * and a remote and a local tree each derived from it by random creates,
 * deletes, moves, renames and edits. Names come from a tiny alphabet (so
 * collisions happen); every new content is unique (so "was this content
 * kept?" has a clear answer).
 */
import { childrenIndex, type Node, type Tree, treeOf } from './tree.ts';

export type Random = () => number;

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export function seeded(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NAMES = ['a', 'b', 'c', 'd', 'a.txt', 'b.txt'];
const pick = <T>(rnd: Random, xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];

export const ROOT = 'root';

export function randomBase(rnd: Random, size: number): Tree {
  const nodes = new Map<string, Node>([[ROOT, { id: ROOT, parentId: null, name: '', kind: 'folder', hash: null, size: 0 }]]);
  for (let i = 0; i < size; i++) addRandom(rnd, nodes, `b${i}`, `base-${i}`);
  return treeOf(ROOT, nodes.values());
}

/** One side's edits since the base. New items get ids `${idPrefix}N`. */
export function mutate(rnd: Random, base: Tree, steps: number, idPrefix: string, contentPrefix: string): Tree {
  const nodes = new Map(base.nodes);
  let n = 0;
  for (let i = 0; i < steps; i++) {
    const all = [...nodes.values()].filter((x) => x.id !== ROOT);
    const files = all.filter((x) => x.kind === 'file');
    const roll = rnd();
    if (roll < 0.3 || all.length === 0) addRandom(rnd, nodes, `${idPrefix}${n++}`, `${contentPrefix}-${i}`);
    else if (roll < 0.5 && files.length) {
      const f = pick(rnd, files);
      nodes.set(f.id, { ...f, hash: `${contentPrefix}-edit-${i}`, size: 1 + i });
    } else if (roll < 0.7) deleteSubtree(nodes, pick(rnd, all).id);
    else moveRandom(rnd, nodes, pick(rnd, all));
  }
  return treeOf(ROOT, nodes.values());
}

function folders(nodes: Map<string, Node>): Node[] {
  return [...nodes.values()].filter((x) => x.kind === 'folder');
}

function freeName(rnd: Random, nodes: Map<string, Node>, parentId: string): string | null {
  const taken = new Set([...nodes.values()].filter((x) => x.parentId === parentId).map((x) => x.name));
  const free = NAMES.filter((x) => !taken.has(x));
  return free.length ? pick(rnd, free) : null;
}

function addRandom(rnd: Random, nodes: Map<string, Node>, id: string, content: string): void {
  const parent = pick(rnd, folders(nodes));
  const name = freeName(rnd, nodes, parent.id);
  if (name === null) return;
  const kind = rnd() < 0.6 ? 'file' : 'folder';
  nodes.set(id, { id, parentId: parent.id, name, kind, hash: kind === 'file' ? content : null, size: kind === 'file' ? content.length : 0 });
}

function deleteSubtree(nodes: Map<string, Node>, id: string): void {
  const kids = childrenIndex(treeOf(ROOT, nodes.values()));
  const stack = [id];
  while (stack.length) {
    const cur = stack.pop()!;
    nodes.delete(cur);
    for (const k of kids.get(cur) ?? []) stack.push(k.id);
  }
}

function moveRandom(rnd: Random, nodes: Map<string, Node>, n: Node): void {
  const inside = (id: string): boolean => {
    for (let cur = nodes.get(id); cur; cur = cur.parentId ? nodes.get(cur.parentId) : undefined) if (cur.id === n.id) return true;
    return false;
  };
  const targets = folders(nodes).filter((f) => !inside(f.id));
  if (!targets.length) return;
  const parent = pick(rnd, targets);
  const name = freeName(rnd, nodes, parent.id);
  if (name === null) return;
  nodes.set(n.id, { ...n, parentId: parent.id, name });
}
