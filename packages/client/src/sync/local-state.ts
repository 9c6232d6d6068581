/**
 * Where each local item is on disk while a plan runs: its folder (by id)
 * and its name as the file system spells it. Paths are derived, so moving
 * a folder moves every path below it without touching the entries.
 *
 * The children of each folder are indexed, so giving an item another id
 * (every uploaded new file gets the server's) touches only that item and
 * its children, not every item of the folder tree.
 */
import { join } from 'node:path';
import type { LocalEntry } from '../scanner/scan-folder.ts';
import type { Node } from '../reconciler/tree.ts';

interface Place {
  parentId: string | null;
  diskName: string;
  node: Node;
}

export class LocalState {
  private readonly places = new Map<string, Place>();
  /** Folder id → the ids of the items whose place names it as their folder. */
  private readonly children = new Map<string, Set<string>>();
  readonly folder: string;
  readonly rootId: string;
  constructor(folder: string, rootId: string, entries: Iterable<LocalEntry>) {
    this.folder = folder;
    this.rootId = rootId;
    this.put(rootId, { parentId: null, diskName: '', node: { id: rootId, parentId: null, name: '', kind: 'folder', hash: null, size: 0 } });
    for (const e of entries) this.put(e.id, { parentId: e.node.parentId, diskName: e.diskPath.slice(e.diskPath.lastIndexOf('/') + 1), node: e.node });
  }

  private put(id: string, p: Place): void {
    const old = this.places.get(id);
    if (old && old.parentId !== p.parentId && old.parentId !== null) this.children.get(old.parentId)?.delete(id);
    this.places.set(id, p);
    if (p.parentId !== null) {
      let kids = this.children.get(p.parentId);
      if (!kids) this.children.set(p.parentId, (kids = new Set()));
      kids.add(id);
    }
  }

  has(id: string): boolean {
    return this.places.has(id);
  }
  node(id: string): Node | undefined {
    return this.places.get(id)?.node;
  }
  nodes(): Node[] {
    return [...this.places.values()].map((p) => p.node);
  }

  /** Path relative to the sync folder, or null if the item (or a folder above it) is not here. */
  relPath(id: string): string | null {
    const parts: string[] = [];
    for (let cur = this.places.get(id), guard = 0; cur; guard++) {
      if (guard > this.places.size) return null;
      if (cur.parentId === null) return parts.reverse().join('/');
      parts.push(cur.diskName);
      cur = this.places.get(cur.parentId);
    }
    return null;
  }
  absPath(id: string): string | null {
    const rel = this.relPath(id);
    return rel === null ? null : join(this.folder, rel);
  }

  set(node: Node, diskName = node.name): void {
    this.put(node.id, { parentId: node.parentId, diskName, node });
  }
  move(id: string, parentId: string, name: string): void {
    const p = this.places.get(id)!;
    this.put(id, { parentId, diskName: name, node: { ...p.node, parentId, name } });
  }
  setContent(id: string, hash: string, size: number): void {
    const p = this.places.get(id)!;
    this.places.set(id, { ...p, node: { ...p.node, hash, size } });
  }
  delete(id: string): void {
    const p = this.places.get(id);
    if (!p) return;
    this.places.delete(id);
    if (p.parentId !== null) this.children.get(p.parentId)?.delete(id);
  }
  rekey(from: string, to: string): void {
    const p = this.places.get(from);
    if (!p) return;
    this.delete(from);
    this.put(to, { ...p, node: { ...p.node, id: to } });
    const kids = this.children.get(from);
    if (!kids) return;
    this.children.delete(from);
    for (const id of kids) {
      const c = this.places.get(id);
      if (c && c.parentId === from) this.put(id, { ...c, parentId: to, node: { ...c.node, parentId: to } });
    }
  }
}
