/**
 * Where each local item is on disk while a plan runs: its folder (by id)
 * and its name as the file system spells it. Paths are derived, so moving
 * a folder moves every path below it without touching the entries.
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
  readonly folder: string;
  readonly rootId: string;
  constructor(folder: string, rootId: string, entries: Iterable<LocalEntry>) {
    this.folder = folder;
    this.rootId = rootId;
    this.places.set(rootId, { parentId: null, diskName: '', node: { id: rootId, parentId: null, name: '', kind: 'folder', hash: null, size: 0 } });
    for (const e of entries) this.places.set(e.id, { parentId: e.node.parentId, diskName: e.diskPath.split('/').pop()!, node: e.node });
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
    this.places.set(node.id, { parentId: node.parentId, diskName, node });
  }
  move(id: string, parentId: string, name: string): void {
    const p = this.places.get(id)!;
    this.places.set(id, { parentId, diskName: name, node: { ...p.node, parentId, name } });
  }
  setContent(id: string, hash: string, size: number): void {
    const p = this.places.get(id)!;
    this.places.set(id, { ...p, node: { ...p.node, hash, size } });
  }
  delete(id: string): void {
    this.places.delete(id);
  }
  rekey(from: string, to: string): void {
    const p = this.places.get(from);
    if (!p) return;
    this.places.delete(from);
    this.places.set(to, { ...p, node: { ...p.node, id: to } });
    for (const [id, c] of this.places) if (c.parentId === from) this.places.set(id, { ...c, parentId: to, node: { ...c.node, parentId: to } });
  }
}
