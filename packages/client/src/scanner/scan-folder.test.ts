/**
 * The scanner against a real folder and a real index: what it tells the
 * index to remember (only rows that changed; rows of items that are gone
 * are dropped, so a freed inode handed to a new file never makes it an old
 * item), identity across a rename, hashes reused only while inode, size
 * and mtime are unchanged, and a change made with the mtime put back is
 * still found when the size differs; a walk's digest follows every stamp.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rename, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SyncIndex } from '../index/sync-index.ts';
import { pathOf, treeOf, type Node, type Tree } from '../reconciler/tree.ts';
import { ROOT_MARKER } from './ignore.ts';
import { scanFolder, walkDigest, walkFolder, type ScanResult } from './scan-folder.ts';

const ROOT = 'root';

describe('scanFolder', () => {
  let dir: string;
  let folder: string;
  let index: SyncIndex;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'coffer-scan-'));
    folder = join(dir, 'folder');
    await mkdir(join(folder, 'a', 'b'), { recursive: true });
    await writeFile(join(folder, ROOT_MARKER), '{}');
    await writeFile(join(folder, 'a', 'one.txt'), 'one');
    await writeFile(join(folder, 'a', 'b', 'two.txt'), 'two');
    index = new SyncIndex(join(dir, 'index.sqlite'));
  });
  after(async () => {
    index.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Scans and stores what the scan says to store, as the engine does; the scan's tree becomes the base. */
  let base: Tree = treeOf(ROOT, [{ id: ROOT, parentId: null, name: '', kind: 'folder', hash: null, size: 0 }]);
  const scan = async (): Promise<ScanResult> => {
    const s = await scanFolder(folder, ROOT, index, base);
    index.transaction(() => {
      for (const id of s.rowChanges.drop) index.deleteLocalFile(id);
      for (const r of s.rowChanges.put) index.putLocalFile(r);
    });
    base = treeOf(ROOT, s.tree.nodes.values());
    return s;
  };
  const byPath = (s: ScanResult) => new Map([...s.tree.nodes.values()].map((n): [string, Node] => [pathOf(s.tree, n.id)!, n]));

  it('stores a row per item once, then nothing while nothing changes', async () => {
    const first = await scan();
    assert.deepEqual([...byPath(first).keys()].sort(), ['', 'a', 'a/b', 'a/b/two.txt', 'a/one.txt']);
    assert.equal(first.rowChanges.put.length, 4);
    assert.equal(index.localFiles().length, 4);
    const again = await scan();
    assert.deepEqual(again.rowChanges, { put: [], drop: [] });
    assert.deepEqual([...again.tree.nodes.keys()], [...first.tree.nodes.keys()], 'the same ids');
  });

  it('keeps an item\'s id across a rename and reuses its hash', async () => {
    const before = byPath(await scan()).get('a/one.txt')!;
    await rename(join(folder, 'a', 'one.txt'), join(folder, 'a', 'b', 'uno.txt'));
    const s = await scan();
    const after = byPath(s).get('a/b/uno.txt')!;
    assert.equal(after.id, before.id);
    assert.equal(after.hash, before.hash);
    assert.deepEqual(s.rowChanges.put.map((r) => r.id).sort(), [byPath(s).get('a')!.id, byPath(s).get('a/b')!.id].sort(), 'the file\'s row stays (same inode, size, mtime); its folders\' mtimes changed');
  });

  it('finds a content change with the mtime put back when the size differs', async () => {
    const path = join(folder, 'a', 'b', 'two.txt');
    const was = byPath(await scan()).get('a/b/two.txt')!;
    const st = await stat(path);
    await writeFile(path, 'two, longer');
    await utimes(path, st.atime, st.mtime);
    const now = byPath(await scan()).get('a/b/two.txt')!;
    assert.equal(now.id, was.id);
    assert.notEqual(now.hash, was.hash);
  });

  it('drops the rows of items that are gone', async () => {
    const gone = byPath(await scan()).get('a/b/uno.txt')!;
    await rm(join(folder, 'a', 'b', 'uno.txt'));
    const s = await scan();
    assert.deepEqual(s.rowChanges.drop, [gone.id]);
    assert.ok(!index.localFiles().some((r) => r.id === gone.id));
    await writeFile(join(folder, 'a', 'new.txt'), 'new');
    const n = byPath(await scan()).get('a/new.txt')!;
    assert.match(n.id, /^local:/, 'a new file is new, whatever inode it got');
  });

  it('reports a symbolic link and leaves it out; the digest changes with an item\'s stamp', async () => {
    await symlink('a', join(folder, 'link'));
    const walk = await walkFolder(folder, () => false, 0);
    assert.deepEqual(walk.problems.map((p) => p.path), ['link']);
    assert.ok(!walk.found.some((f) => f.diskPath === 'link'));
    await rm(join(folder, 'link'));
    const before = walkDigest(await walkFolder(folder, () => false, 0));
    assert.equal(walkDigest(await walkFolder(folder, () => false, 0)), before, 'the same folder, the same digest');
    const path = join(folder, 'a', 'new.txt');
    const st = await stat(path);
    await utimes(path, st.atime, new Date(st.mtimeMs + 1000));
    assert.notEqual(walkDigest(await walkFolder(folder, () => false, 0)), before);
  });

  it('stops at a folder without its root marker', async () => {
    await rm(join(folder, ROOT_MARKER));
    await assert.rejects(scanFolder(folder, ROOT, index, base), { name: 'FolderMissingError' });
    await writeFile(join(folder, ROOT_MARKER), '{}');
  });
});
