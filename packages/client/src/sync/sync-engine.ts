/**
 * One sync run: refresh the remote tree, scan the folder, plan, check the
 * safety valves, carry the plan out step by step, recording each completed
 * step in the base. Repeats until a round plans nothing (a conflict copy
 * made in one round is uploaded in the next), at most a few rounds.
 *
 * Crash safety: the base only ever records what both sides already hold,
 * one step at a time, so a run cut short anywhere is continued by the next.
 *
 * A round with nothing to do is found out before any tree is built: the
 * folder walked (always in full) is the base by its digest or by one query,
 * and the remote side is the base by the quiet flag or by one query.
 */
import type { Problem, RemoteNode, SyncIndex } from '../index/sync-index.ts';
import { plan, type Op, type Plan } from '../reconciler/plan.ts';
import { agreedBase } from '../reconciler/record.ts';
import { pathOf, type Tree } from '../reconciler/tree.ts';
import { knownInodes, scanFolder, walkFolder, walkMatchesIndex, type ScanResult } from '../scanner/scan-folder.ts';
import { foldsCase } from '../scanner/case-folding.ts';
import { LocalExecutor, type Downloader, type StepOutcome } from '../transfer/local-executor.ts';
import { REJECTED, RemoteExecutor, type RemoteWriter } from '../transfer/remote-executor.ts';
import { LocalState } from './local-state.ts';
import { checkDriveEmptied, QUIET, refreshRemote, type RemoteReader } from './remote-tree.ts';

export interface SyncApi extends RemoteReader, RemoteWriter {
  download: Downloader;
  reportPendingChanges?(n: number): Promise<void>;
}

export interface SyncOptions {
  folder: string;
  /** Names conflict copies. */
  deviceName: string;
  /** A run that would delete more than this share of the synced items pauses (0.5 = 50 %). */
  maxDeleteShare?: number;
  /** Deletions the user already confirmed for this run (`--yes`): the valve lets them through. */
  allowDeletes?: boolean;
  /** Plan for a file system that folds case; by default the folder is asked (scanner/case-folding.ts). */
  caseInsensitive?: boolean;
  now?: () => number;
  /** Told each round's plan before it runs (progress display). */
  onPlan?: (p: Plan) => void;
  onStep?: (op: Op, outcome: StepOutcome) => void;
}

export interface SyncReport {
  rounds: number;
  uploaded: number;
  downloaded: number;
  moved: number;
  deleted: number;
  created: number;
  conflicts: string[];
  skipped: { op: Op; reason: string }[];
  problems: Problem[];
  /** Local changes still not on the server after this run. */
  pendingLocal: number;
}

export class TooManyDeletesError extends Error {
  readonly code = 'TOO_MANY_DELETES';
  readonly deletes: number;
  readonly total: number;
  constructor(deletes: number, total: number, share: number) {
    super(`This sync would delete ${deletes} of ${total} synced items (more than ${Math.round(share * 100)} %). Nothing was deleted; check the folder and the server, then run again with --yes if this is intended.`);
    this.name = 'TooManyDeletesError';
    this.deletes = deletes;
    this.total = total;
  }
}

const MAX_ROUNDS = 4;
const MIN_DELETES_FOR_VALVE = 5;

export async function syncOnce(api: SyncApi, index: SyncIndex, opts: SyncOptions): Promise<SyncReport> {
  const now = opts.now ?? Date.now;
  const report: SyncReport = { rounds: 0, uploaded: 0, downloaded: 0, moved: 0, deleted: 0, created: 0, conflicts: [], skipped: [], problems: [], pendingLocal: 0 };
  /** Items the server refused this run (quota, size, name): reported once, tried again next run, not next round. */
  const refused = new Map<string, Problem>();
  /** Remote steps the last round could not do: what is still not on the server. */
  let unsent: Op[] = [];
  const caseInsensitive = opts.caseInsensitive ?? await foldsCase(opts.folder);
  for (let round = 1; round <= MAX_ROUNDS; round++) {
    const { rootId, changes: remoteChanges, listed } = await refreshRemote(api, index);
    unsent = [];
    // The folder is the base, and so is the server: nothing to plan, and no tree needs building. The folder
    // is walked in full every time (a change made while no client ran is found); the digest of the last
    // walk that was the base saves even reading the index, and the quiet flag (the last run ended in
    // agreement, and the feed brought nothing since) the comparison of the remote tree with the base.
    const remoteIsBase = () => (index.getMeta(QUIET) === '1' && remoteChanges === 0 && !listed) || index.remoteIsBase(rootId);
    const walk = await walkFolder(opts.folder, knownInodes(index), now());
    if (walkMatchesIndex(index, walk, rootId, true) && remoteIsBase()) {
      index.setMeta(QUIET, '1');
      report.problems = [...refused.values()];
      break;
    }
    // Something differs (or only a file's stamp changed, which the scan records): the trees, then.
    const base = index.baseTree(rootId);
    const scan = await scanFolder(opts.folder, rootId, index, base, now(), {}, walk);
    saveFileRows(index, scan);
    report.problems = [...scan.problems, ...refused.values()];
    if (sameTree(scan.tree, base) && remoteIsBase()) {
      index.setMeta(QUIET, '1');
      break;
    }
    const remote = index.remoteTree(rootId);
    index.setMeta(QUIET, null);
    const p = plan(remote, scan.tree, base, { device: opts.deviceName, day: new Date(now()).toISOString().slice(0, 10), caseInsensitive });
    p.ops = p.ops.filter((o) => !(o.side === 'remote' && refused.has(o.id)));
    if (p.ops.length === 0 && p.rekey.length === 0 && p.settle.length === 0) {
      index.setMeta(QUIET, '1');
      break;
    }
    report.rounds = round;
    checkDriveEmptied(remote, base, p, opts.allowDeletes);
    checkDeleteValve(p, base, opts);
    opts.onPlan?.(p);
    const skippedBefore = report.skipped.length;
    await execute(api, index, p, scan, remote, base, opts, report, refused);
    unsent = report.skipped.slice(skippedBefore).map((s) => s.op).filter((o) => o.side === 'remote' && !refused.has(o.id));
  }
  report.pendingLocal = await pendingLocalChanges(api, unsent, report);
  index.setProblems(report.problems);
  return report;
}

/** Remembers what the scan saw (inodes, stamps, hashes): only rows that changed, in one transaction. */
function saveFileRows(index: SyncIndex, scan: ScanResult): void {
  const { put, drop } = scan.rowChanges;
  if (put.length || drop.length) {
    index.transaction(() => {
      for (const id of drop) index.deleteLocalFile(id);
      for (const r of put) index.putLocalFile(r);
    });
  }
}

/** Whether two trees hold the same items at the same places with the same content. */
function sameTree(a: Tree, b: Tree): boolean {
  if (a.nodes.size !== b.nodes.size) return false;
  for (const n of a.nodes.values()) {
    const m = b.nodes.get(n.id);
    if (!m || m.parentId !== n.parentId || m.name !== n.name || m.kind !== n.kind || m.hash !== n.hash) return false;
  }
  return true;
}

function checkDeleteValve(p: Plan, base: Tree, opts: SyncOptions): void {
  if (opts.allowDeletes) return;
  const share = opts.maxDeleteShare ?? 0.5;
  const deletes = p.ops.filter((o) => o.type === 'delete').length;
  const total = Math.max(1, base.nodes.size - 1);
  if (deletes >= MIN_DELETES_FOR_VALVE && deletes / total > share) throw new TooManyDeletesError(deletes, total, share);
}

async function execute(api: SyncApi, index: SyncIndex, p: Plan, scan: ScanResult, remoteTree: Tree<RemoteNode>, base: Tree, opts: SyncOptions, report: SyncReport, refused: Map<string, Problem>): Promise<void> {
  // The live picture of both sides and the base while steps complete.
  const remote = new Map(remoteTree.nodes);
  const baseNow = new Map(base.nodes);
  const record = (id: string) => {
    const next = agreedBase(baseNow.get(id), remote.get(id), state.node(id));
    if (next) { baseNow.set(id, next); index.putBase(next); } else { baseNow.delete(id); index.deleteBase(id); }
  };
  const state = new LocalState(opts.folder, remoteTree.rootId, scan.entries.values());
  index.transaction(() => {
    for (const s of p.settle) {
      if (s.base) { baseNow.set(s.id, s.base); index.putBase(s.base); } else { baseNow.delete(s.id); index.deleteBase(s.id); }
    }
    for (const { from, to } of p.rekey) {
      state.rekey(from, to);
      index.rekeyLocal(from, to);
      record(from);
      record(to);
    }
  });
  // Where the copy ends up (the merged tree), not where its content sits before the local steps move it there.
  for (const c of p.conflicts) {
    const path = pathOf(p.merged, c.copyId) ?? c.copyId;
    report.conflicts.push(path);
    index.putConflict({ id: c.copyId, path, original: pathOf(p.merged, c.id) ?? '', at: (opts.now ?? Date.now)() });
  }
  // What the scan saw of each file, looked up only for the files a step touches.
  const stamps = { get: (id: string) => { const e = scan.entries.get(id); return e && { dev: e.dev, ino: e.ino, size: e.size, mtimeMs: e.mtimeMs, hash: e.node.hash }; } };
  const local = new LocalExecutor(state, (id) => api.download(id), stamps, (id, stamp) => {
    if (stamp) index.putLocalFile({ id, ...stamp });
    else index.deleteLocalFile(id);
  });
  const remoteExec: RemoteExecutor = new RemoteExecutor(api, {
    remoteChanged: (id, item) => {
      if (item) { remote.set(id, item); index.putRemote(item); } else { remote.delete(id); index.deleteRemote(id); }
    },
    rekey: (from, to) => {
      index.transaction(() => {
        state.rekey(from, to);
        index.rekeyLocal(from, to);
        const old = baseNow.get(from);
        if (old) { baseNow.delete(from); index.deleteBase(from); }
      });
    },
    localPath: (id): string | null => state.absPath(remoteExec.resolve(id)),
    remoteNode: (id) => remote.get(id),
    grouped: (fn) => index.grouped(fn),
  });
  const finish = (op: Op, result: StepOutcome | Error) => {
    let outcome: StepOutcome;
    if (result instanceof Error) {
      const code = (result as { code?: string }).code;
      if (op.side === 'remote' && code && REJECTED.has(code)) {
        const problem: Problem = { path: state.relPath(remoteExec.resolve(op.id)) ?? op.id, kind: 'rejected', message: `${code}: ${result.message}`, at: Date.now() };
        report.problems.push(problem);
        refused.set(op.id, problem);
        outcome = { done: false, reason: code };
      } else throw result;
    } else outcome = result;
    opts.onStep?.(op, outcome);
    if (!outcome.done) {
      report.skipped.push({ op, reason: outcome.reason });
      return;
    }
    record(op.side === 'remote' ? remoteExec.resolve(op.id) : op.id);
    count(op, report);
  };
  // Phases, each keeping the plan's order: structure first (moves, new folders, deletions), then
  // contents in parallel. Safe because a write never frees a name or a folder another step needs.
  const isWrite = (o: Op): o is Extract<Op, { type: 'write' }> => o.type === 'write';
  const localOps = p.ops.filter((o) => o.side === 'local');
  const remoteOps = p.ops.filter((o) => o.side === 'remote');
  for (const op of localOps.filter((o) => !isWrite(o))) finish(op, await local.run(op).catch((e: Error) => e));
  await pool(localOps.filter(isWrite), DOWNLOADS_IN_PARALLEL, async (op) => finish(op, await local.run(op).catch((e: Error) => e)));
  for (const op of remoteOps.filter((o) => !isWrite(o))) finish(op, await remoteExec.run(op).catch((e: Error) => e));
  await remoteExec.runWrites(remoteOps.filter(isWrite), finish);
}

const DOWNLOADS_IN_PARALLEL = 4;

/** Runs `fn` over `items`, at most `n` at a time. */
async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | null = null;
  // After a failure no new item starts, and the run ends only when those in flight have (none outlives it).
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length && !failure) {
      try {
        await fn(items[next++]);
      } catch (error) {
        failure ??= { error };
      }
    }
  }));
  if (failure) throw (failure as { error: unknown }).error;
}

function count(op: Op, r: SyncReport): void {
  if (op.type === 'write') op.side === 'remote' ? r.uploaded++ : r.downloaded++;
  else if (op.type === 'move') r.moved++;
  else if (op.type === 'delete') r.deleted++;
  else r.created++;
}

/** Local changes not yet on the server: the items the last round could not change remotely, and those unreadable or refused (each once). */
async function pendingLocalChanges(api: SyncApi, unsent: Op[], report: SyncReport): Promise<number> {
  const pending = new Set(unsent.map((o) => o.id)).size + report.problems.filter((p) => p.kind === 'unreadable' || p.kind === 'rejected').length;
  await api.reportPendingChanges?.(pending).catch(() => {});
  return pending;
}
