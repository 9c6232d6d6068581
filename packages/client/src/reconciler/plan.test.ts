/**
 * Properties of the planner over generated tree triples (fast-check picks
 * the seeds; a failing seed replays exactly): it terminates, it never
 * deletes or overwrites content that exists on one side only, every step
 * is valid when it runs, and after its plans are carried out the trees
 * agree — also when a round is cut short by a crash.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { execute, trees, worldOf, type World } from './model.ts';
import { plan } from './plan.ts';
import { mutate, randomBase, ROOT, seeded } from './random-trees.ts';
import { pathOf, type Node, type Tree } from './tree.ts';

const OPTS = { device: 'laptop', day: '2026-11-25' };
/** `COFFER_PLANNER_RUNS=100000 node --test …` for a soak; CI runs the default. */
const RUNS = Number(process.env.COFFER_PLANNER_RUNS ?? 2000);
const MAX_ROUNDS = 4;

function scenario(seed: number, baseSize: number, remoteSteps: number, localSteps: number): World {
  const rnd = seeded(seed);
  const base = randomBase(rnd, baseSize);
  const remote = mutate(rnd, base, remoteSteps, 'r', 'remote');
  const local = mutate(rnd, base, localSteps, 'local:', 'local');
  return worldOf(remote, local, base);
}

function contents(nodes: Iterable<Node>): Set<string> {
  return new Set([...nodes].filter((n) => n.kind === 'file').map((n) => n.hash!));
}

/** Folder-relative structure with ids: equal trees print equally. */
function shape(t: Tree): string[] {
  return [...t.nodes.values()].filter((n) => n.id !== ROOT).map((n) => `${n.id} ${pathOf(t, n.id)} ${n.kind} ${n.hash ?? ''}`).sort();
}

function assertValid(t: Tree, label: string): void {
  const seen = new Set<string>();
  for (const n of t.nodes.values()) {
    if (n.id === ROOT) continue;
    assert.ok(pathOf(t, n.id) !== null, `${label}: ${n.id} is attached to the root`);
    const key = `${n.parentId}/${n.name}`;
    assert.ok(!seen.has(key), `${label}: one item per name (${key})`);
    seen.add(key);
  }
}

/** Plans and executes until nothing is left to do; `crashAt` cuts the first round short. */
function syncToQuiet(w: World, crashAt = Infinity): number {
  for (let round = 1; round <= MAX_ROUNDS + 1; round++) {
    const t = trees(w);
    const p = plan(t.remote, t.local, t.base, OPTS);
    if (p.ops.length === 0 && p.rekey.length === 0 && p.settle.length === 0) return round - 1;
    const done = execute(w, p, round === 1 ? crashAt : Infinity);
    if (round > 1 || crashAt === Infinity) assert.equal(done, p.ops.length, 'every step ran: each was valid in its place');
    const after = trees(w);
    assertValid(after.remote, `remote after round ${round}`);
    assertValid(after.local, `local after round ${round}`);
  }
  return Infinity;
}

function checkRun(seed: number, baseSize: number, remoteSteps: number, localSteps: number, crashAt = Infinity): void {
  const w = scenario(seed, baseSize, remoteSteps, localSteps);
  const before = trees(w);
  const onlyLocal = [...contents(before.local.nodes.values())].filter((h) => !contents(before.base.nodes.values()).has(h));
  const onlyRemote = [...contents(before.remote.nodes.values())].filter((h) => !contents(before.base.nodes.values()).has(h));
  const rounds = syncToQuiet(w, crashAt);
  assert.ok(rounds <= MAX_ROUNDS, `quiet after ${rounds} rounds (at most ${MAX_ROUNDS})`);
  const after = trees(w);
  assert.deepEqual(shape(after.local), shape(after.remote), 'both sides agree');
  assert.deepEqual(shape(after.base), shape(after.remote), 'the base records the agreement');
  const kept = contents(after.local.nodes.values());
  for (const h of [...onlyLocal, ...onlyRemote]) assert.ok(kept.has(h), `content ${h} that one side had alone is still in the folder`);
  for (const h of contents(before.local.nodes.values())) assert.ok(kept.has(h) || w.serverHistory.has(h), `local content ${h} survives, at least in the server's history`);
}

describe('planner properties', () => {
  it('terminates, keeps all one-sided content, and converges', () => {
    fc.assert(fc.property(fc.integer(), fc.integer({ min: 0, max: 25 }), fc.integer({ min: 0, max: 12 }), fc.integer({ min: 0, max: 12 }),
      (seed, size, r, l) => checkRun(seed, size, r, l)), { numRuns: RUNS });
  });

  it('recovers from a crash after any step of the first round', () => {
    fc.assert(fc.property(fc.integer(), fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 10 }), fc.integer({ min: 0, max: 10 }), fc.integer({ min: 0, max: 30 }),
      (seed, size, r, l, crashAt) => checkRun(seed, size, r, l, crashAt)), { numRuns: RUNS });
  });

  it('plans nothing when nothing changed', () => {
    fc.assert(fc.property(fc.integer(), fc.integer({ min: 0, max: 20 }), (seed, size) => {
      const base = randomBase(seeded(seed), size);
      const p = plan(base, base, base, OPTS);
      assert.deepEqual(p.ops, []);
    }), { numRuns: 200 });
  });
});
