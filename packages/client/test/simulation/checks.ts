/**
 * The invariants checked after every seed has healed:
 *
 * 1. convergence: A's folder, B's folder and the server's tree are the same
 *    (paths, kinds, content hashes);
 * 2. nothing acknowledged is lost: every content that sat in a client's
 *    folder when a sync then completed, every upload the server confirmed
 *    to a client, and every upload of the web app still exists somewhere —
 *    in a folder (under any name, conflict copies included), in the
 *    server's version history of a file, or in its recycle bin (items
 *    deleted with a folder are found by restoring the bin, which is why
 *    this check comes last);
 * 3. no leftovers: no client temporary file (`.coffer-…`, the root marker
 *    aside) in either folder, and no name carrying a client-made suffix
 *    (a `.coffer-move-N` parking name) anywhere.
 *
 * (4, settling within a bounded number of rounds, is checked on every sync
 * by the runner.)
 */
import type { RemoteItem } from '../../src/remote/types.ts';
import type { Entry, SimClient, ThirdParty } from './sim-client.ts';

/** A broken invariant (rather than a fault the simulation caused on purpose). */
export class SimFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SimFailure';
  }
}

export async function checkFinalState(A: SimClient, B: SimClient, web: ThirdParty, acked: Map<string, string>, note: (line: string) => void): Promise<string> {
  const a = await A.walk(true);
  const b = await B.walk(true);
  const tree = await web.tree();
  const server: Entry[] = [...tree].map(([path, i]) => ({ path, kind: i.kind, ...(i.kind === 'file' ? { hash: i.contentHash! } : {}) }));

  const problems = [...differences('A', a.entries, 'B', b.entries), ...differences('A', a.entries, 'server', server)];
  for (const [who, temps] of [['A', a.temps], ['B', b.temps]] as const) for (const t of temps) problems.push(`${who} has a client temporary file left: ${t}`);
  for (const [who, list] of [['A', a.entries], ['B', b.entries], ['server', server]] as const) {
    for (const e of list) if (e.path.includes('.coffer-')) problems.push(`${who} has an item with a client-made name: ${e.path}`);
  }
  if (problems.length) {
    throw new SimFailure(`the trees differ after healing:\n  ${problems.join('\n  ')}\n  A:      ${show(a.entries)}\n  B:      ${show(b.entries)}\n  server: ${show(server)}`);
  }

  const have = new Set<string>();
  for (const e of [...a.entries, ...b.entries]) if (e.hash) have.add(e.hash);
  const missing = () => [...acked].filter(([h]) => !have.has(h));
  if (missing().length) await addHistory(web, tree, have);
  if (missing().length) {
    // Contents that went with a deleted folder: bring the whole bin back, then read every file's history.
    const restored = await restoreAll(web);
    await addHistory(web, await web.tree(), have);
    note(`check: restored ${restored} item(s) from the recycle bin to look for deleted contents`);
  }
  const lost = missing();
  if (lost.length) {
    throw new SimFailure(`${lost.length} acknowledged content(s) exist nowhere (no folder, no version, not in the recycle bin):\n  ${lost.map(([h, where]) => `${h.slice(0, 12)}… ${where}`).join('\n  ')}\n  final tree: ${show(server)}`);
  }
  note(`check: A = B = server (${server.length} items); all ${acked.size} acknowledged contents kept; no leftovers`);
  return server.map((e) => `${e.path} ${e.kind} ${e.hash ?? ''}`).join('\n');
}

function differences(na: string, a: Entry[], nb: string, b: Entry[]): string[] {
  const out: string[] = [];
  const mb = new Map(b.map((e) => [e.path, e]));
  const ma = new Map(a.map((e) => [e.path, e]));
  for (const e of a) {
    const o = mb.get(e.path);
    if (!o) out.push(`only in ${na}: ${e.path}`);
    else if (o.kind !== e.kind || o.hash !== e.hash) out.push(`${e.path}: ${na} has ${e.kind} ${e.hash?.slice(0, 8) ?? ''}, ${nb} has ${o.kind} ${o.hash?.slice(0, 8) ?? ''}`);
  }
  for (const e of b) if (!ma.has(e.path)) out.push(`only in ${nb}: ${e.path}`);
  return out;
}

function show(entries: Entry[]): string {
  return entries.map((e) => (e.kind === 'folder' ? `${e.path}/` : `${e.path}=${e.hash!.slice(0, 8)}`)).join(' ') || '(empty)';
}

/** Every version of every live file, and the current content of every file in the recycle bin. */
async function addHistory(web: ThirdParty, tree: Map<string, RemoteItem>, have: Set<string>): Promise<void> {
  for (const item of tree.values()) {
    if (item.kind !== 'file') continue;
    for (const v of await web.versions(item.id)) have.add(v.contentHash);
  }
  for (const item of await web.trash()) if (item.kind === 'file' && item.contentHash) have.add(item.contentHash);
}

async function restoreAll(web: ThirdParty): Promise<number> {
  let n = 0;
  for (let round = 0; round < 50; round++) {
    const bin = await web.trash();
    if (!bin.length) return n;
    for (const item of bin) {
      // (one restored earlier in this loop may have brought this one back with it)
      if (await web.restore(item.id).then(() => true, () => false)) n++;
    }
  }
  throw new SimFailure('the recycle bin did not empty while restoring everything in it');
}
