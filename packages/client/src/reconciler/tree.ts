/**
 * The three trees the reconciler works on, Nucleus-style: the remote tree
 * (the server's view), the local tree (the sync folder as scanned) and the
 * base (the last state both sides agreed on). All are keyed by the server's
 * stable item ids; a local item the server has never seen has an id of its
 * own (`local:…`) until its upload returns the server's id.
 *
 * Pure data and functions: no I/O, so the planner can be tested with
 * generated trees.
 */

export type Kind = 'file' | 'folder';

export interface Node {
  id: string;
  /** null only for the root. */
  parentId: string | null;
  /** NFC, as the server stores it; '' for the root. */
  name: string;
  kind: Kind;
  /** Content hash (see docs/sync-protocol.md) of a file; null for folders. */
  hash: string | null;
  size: number;
}

export interface Tree<N extends Node = Node> {
  rootId: string;
  nodes: ReadonlyMap<string, N>;
}

export function isLocalId(id: string): boolean {
  return id.startsWith('local:');
}

export function treeOf(rootId: string, nodes: Iterable<Node>): Tree {
  const map = new Map<string, Node>();
  for (const n of nodes) map.set(n.id, n);
  return { rootId, nodes: map };
}

/** The path of a node from the root, '' for the root itself; null if the node or one of its ancestors is missing (or a cycle). */
export function pathOf(tree: Tree, id: string): string | null {
  const parts: string[] = [];
  let cur = tree.nodes.get(id);
  for (let guard = 0; cur && cur.id !== tree.rootId; guard++) {
    if (guard > tree.nodes.size) return null;
    parts.push(cur.name);
    if (cur.parentId === null) return null;
    cur = tree.nodes.get(cur.parentId);
  }
  return cur ? parts.reverse().join('/') : null;
}

/** Children of every folder, by parent id. */
export function childrenIndex(tree: Tree): Map<string, Node[]> {
  const index = new Map<string, Node[]>();
  for (const n of tree.nodes.values()) {
    if (n.parentId === null) continue;
    let list = index.get(n.parentId);
    if (!list) index.set(n.parentId, (list = []));
    list.push(n);
  }
  return index;
}

/** Depth from the root (root = 0); Infinity if detached or cyclic. */
export function depthOf(tree: Tree, id: string): number {
  let depth = 0;
  let cur = tree.nodes.get(id);
  while (cur && cur.id !== tree.rootId) {
    if (depth > tree.nodes.size || cur.parentId === null) return Infinity;
    depth++;
    cur = tree.nodes.get(cur.parentId);
  }
  return cur ? depth : Infinity;
}

export function sameLocation(a: Node, b: Node): boolean {
  return a.parentId === b.parentId && a.name === b.name;
}

/** How one side changed an item relative to the base. */
export interface SideChange {
  created: boolean;
  deleted: boolean;
  moved: boolean;
  edited: boolean;
}

export const UNCHANGED: SideChange = Object.freeze({ created: false, deleted: false, moved: false, edited: false });

export function changeOf(base: Node | undefined, side: Node | undefined): SideChange {
  if (!base && !side) return UNCHANGED;
  if (!base) return { created: true, deleted: false, moved: false, edited: false };
  if (!side) return { created: false, deleted: true, moved: false, edited: false };
  const moved = !sameLocation(base, side);
  const edited = base.kind === 'file' && side.kind === 'file' && base.hash !== side.hash;
  return moved || edited ? { created: false, deleted: false, moved, edited } : UNCHANGED;
}

export function isChanged(c: SideChange): boolean {
  return c.created || c.deleted || c.moved || c.edited;
}
