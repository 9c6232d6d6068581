/**
 * Runs every cell of the change matrix (change-matrix.ts) through the
 * planner and the in-memory executor, and checks both sides end with the
 * promised tree. The same cells run against a real server and real folders
 * in test/e2e.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execute, trees, worldOf } from '../../src/reconciler/model.ts';
import { plan } from '../../src/reconciler/plan.ts';
import { pathOf, treeOf, type Node, type Tree } from '../../src/reconciler/tree.ts';
import { SCENARIOS } from './change-matrix.ts';

const OPTS = { device: 'laptop', day: '2026-11-25' };
const ROOT = 'root';

function nodesOf(paths: string[]): Map<string, Node> {
  const m = new Map<string, Node>([[ROOT, { id: ROOT, parentId: null, name: '', kind: 'folder', hash: null, size: 0 }]]);
  for (const p of paths) add(m, `id:${p.replace(/\/$/, '').split('=')[0]}`, p);
  return m;
}

function find(m: Map<string, Node>, path: string): Node {
  const t = treeOf(ROOT, m.values());
  for (const n of m.values()) if (pathOf(t, n.id) === path) return n;
  throw new Error(`no ${path} in ${[...m.values()].map((n) => pathOf(t, n.id)).join(', ')}`);
}

function add(m: Map<string, Node>, id: string, spec: string): void {
  const folder = spec.endsWith('/');
  const [path, content] = folder ? [spec.slice(0, -1), null] : spec.split('=');
  const parts = path.split('/');
  const name = parts.pop()!;
  const parentId = parts.length ? find(m, parts.join('/')).id : ROOT;
  m.set(id, { id, parentId, name, kind: folder ? 'folder' : 'file', hash: content, size: content?.length ?? 0 });
}

function applySteps(base: Map<string, Node>, steps: string[], newPrefix: string): Tree {
  const m = new Map(base);
  for (const step of steps) {
    const [verb, rest] = [step.slice(0, step.indexOf(' ')), step.slice(step.indexOf(' ') + 1)];
    if (verb === 'add') add(m, `${newPrefix}${rest.replace(/\/$/, '').split('=')[0]}`, rest);
    else if (verb === 'edit') { const [p, c] = rest.split('='); const n = find(m, p); m.set(n.id, { ...n, hash: c, size: c.length }); }
    else if (verb === 'rm') {
      const gone = find(m, rest).id;
      const t = treeOf(ROOT, m.values());
      for (const n of [...m.values()]) { const p = pathOf(t, n.id); if (n.id === gone || (p && p.startsWith(rest + '/'))) m.delete(n.id); }
    } else if (verb === 'mv') {
      const [from, to] = rest.split(' -> ');
      const n = find(m, from);
      const parts = to.split('/');
      const name = parts.pop()!;
      m.set(n.id, { ...n, parentId: parts.length ? find(m, parts.join('/')).id : ROOT, name });
    } else throw new Error(`unknown step ${step}`);
  }
  return treeOf(ROOT, m.values());
}

function listing(t: Tree): string[] {
  return [...t.nodes.values()].filter((n) => n.id !== ROOT).map((n) => `${pathOf(t, n.id)}${n.kind === 'folder' ? '/' : `=${n.hash}`}`).sort();
}

describe('change matrix (planner + in-memory sides)', () => {
  for (const s of SCENARIOS) {
    it(s.name, () => {
      const base = nodesOf(s.base);
      const w = worldOf(applySteps(base, s.remote, 'r:'), applySteps(base, s.local, 'local:'), treeOf(ROOT, base.values()));
      for (let round = 0; round < 5; round++) {
        const t = trees(w);
        const p = plan(t.remote, t.local, t.base, OPTS);
        if (!p.ops.length && !p.rekey.length && !p.settle.length) break;
        execute(w, p);
      }
      const t = trees(w);
      const expected = s.expect.map((e) => e.replace('{conflict}', ' (conflict from laptop 2026-11-25)')).sort();
      assert.deepEqual(listing(t.local), expected, 'local');
      assert.deepEqual(listing(t.remote), expected, 'remote');
    });
  }
});
