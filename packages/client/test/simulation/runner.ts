/**
 * Runs one seed of the deterministic simulation: a fresh account on one
 * real server, two real clients (A, B) and the web app (a third party
 * using the API directly), then a seeded schedule of actions carried out
 * strictly one at a time, each awaited (so the order of everything, every
 * request included, follows from the seed):
 *
 * - the user's edits on A or B: new file, edit (in place or atomic save),
 *   mkdir, rename or move, delete of a file or a folder;
 * - the web app's edits on the server: new file, new version, mkdir,
 *   rename or move, delete;
 * - syncs, with a seeded share of their requests failing (net.ts), and now
 *   and then something happening in the middle of one (before its nth API
 *   call: the user edits, the web app edits, or the other client syncs);
 * - crashes: a sync cut short right after its nth step (done but not yet
 *   recorded in the base) or just before its nth API call, after which the
 *   client restarts from what it persisted.
 *
 * Then heal: no more faults, A and B sync in turn until neither has
 * anything to do (bounded), and the invariants are checked (checks.ts).
 * Time is the simulated clock (SimClock): the engine's `now`, and the
 * modification time of every file the user writes.
 */
import { createHash } from 'node:crypto';
import { ApiError } from '../../src/remote/api-error.ts';
import { RemoteDriveEmptyError } from '../../src/sync/remote-tree.ts';
import { TooManyDeletesError, type SyncReport } from '../../src/sync/sync-engine.ts';
import { startTestServer } from '../../../server/test/support/test-server.ts';
import { checkFinalState, SimFailure } from './checks.ts';

export { SimFailure };
import { mix, Rng } from './rng.ts';
import { describe, nextAction, type Action, type Interference, type LocalAction, type RemoteAction, type Who } from './schedule.ts';
import { Crash, SimClient, SimClock, ThirdParty, type SimAccount } from './sim-client.ts';

/** A successful sync that needed more rounds than this (of the engine's 4) is a failure: the plan does not settle. */
export const ROUND_BOUND = 3;
/** Heal: A then B, at most this many times, until both have nothing to do. */
const HEAL_PASSES = 5;

export interface SimServer {
  url: string;
  /** A fresh user. */
  newAccount(): Promise<SimAccount>;
  close(): Promise<void>;
}

/**
 * One real server for all seeds (a fresh user per seed). Devices get their
 * sessions from the server's session service, as a sign-in would issue
 * them: a password check costs an argon2 hash (~50 ms) per device per seed,
 * and signing in is not what this simulation is about.
 */
export async function startSimServer(): Promise<SimServer> {
  const s = await startTestServer();
  const { users, sessions } = s.server.coffer.services;
  let n = 0;
  return {
    url: s.url,
    async newAccount() {
      const user = await users.create({ username: `sim${++n}`, password: 'correct-horse-battery-staple' });
      return {
        url: s.url,
        async signIn(deviceName) {
          const issued = await sessions.issue(user.id, { kind: 'sync', name: deviceName }, { origin: { ip: '127.0.0.1' } as never });
          return { ...issued.tokens!, deviceKey: issued.deviceKey, sessionId: issued.sessionId, deviceId: issued.deviceId };
        },
      };
    },
    close: () => s.close(),
  };
}

export interface Stats {
  actions: Record<string, number>;
  syncs: number;
  syncsFailed: number;
  crashes: number;
  faults: Record<string, number>;
  conflicts: number;
  skippedSteps: number;
  interference: number;
  deletePauses: number;
  maxRounds: number;
  healPasses: number;
}

export interface SeedResult {
  seed: number;
  ok: boolean;
  failure?: string;
  /** What happened, one line per action and sync outcome: the replay log. */
  log: string[];
  /** A digest of the log and the final tree: the same seed must give the same one. */
  fingerprint: string;
  stats: Stats;
  ms: number;
}

export interface RunOptions {
  /** Actions before healing (default 30). */
  steps?: number;
  /** Each log line as it happens. */
  trace?: (line: string) => void;
  /** Also each round's plan and each step's outcome (to the trace only: the log stays the same). */
  detail?: boolean;
}

export async function runSeed(server: SimServer, seed: number, opts: RunOptions = {}): Promise<SeedResult> {
  const started = performance.now();
  const sim = new Simulation(seed, opts.trace, opts.detail);
  let failure: string | undefined;
  let finalTree = '';
  try {
    await sim.setUp(server);
    const steps = opts.steps ?? 30;
    for (let step = 1; step <= steps; step++) await sim.step(step);
    finalTree = await sim.healAndCheck();
  } catch (e) {
    failure = e instanceof SimFailure ? e.message : `unexpected error: ${(e as Error).stack ?? e}`;
    sim.note(`FAILED: ${failure}`);
  } finally {
    await sim.tearDown();
  }
  const fingerprint = createHash('sha256').update(sim.log.join('\n')).update(finalTree).digest('hex').slice(0, 16);
  return { seed, ok: failure === undefined, failure, log: sim.log, fingerprint, stats: sim.stats, ms: performance.now() - started };
}

class Simulation {
  readonly seed: number;
  readonly rng: Rng;
  readonly clock = new SimClock();
  readonly log: string[] = [];
  /** Every content some party was told is safe: content hash → where that happened. */
  readonly acked = new Map<string, string>();
  readonly stats: Stats = {
    actions: {}, syncs: 0, syncsFailed: 0, crashes: 0, faults: {}, conflicts: 0, skippedSteps: 0, interference: 0, deletePauses: 0, maxRounds: 0, healPasses: 0,
  };
  private readonly trace?: (line: string) => void;
  private readonly detail: boolean;
  private A!: SimClient;
  private B!: SimClient;
  private web!: ThirdParty;
  private stepNo = 0;
  private depth = '';

  constructor(seed: number, trace?: (line: string) => void, detail = false) {
    this.seed = seed;
    this.rng = new Rng(seed);
    this.trace = trace;
    this.detail = detail;
  }

  note(line: string): void {
    const l = `${this.depth}${line}`;
    this.log.push(l);
    this.trace?.(l);
  }

  private ack(hash: string, where: string): void {
    if (!this.acked.has(hash)) this.acked.set(hash, where);
  }

  private client(c: Who): SimClient {
    return c === 'A' ? this.A : this.B;
  }

  async setUp(server: SimServer): Promise<void> {
    const account = await server.newAccount();
    this.A = await SimClient.start(account, 'A', this.clock, (h) => this.ack(h, `server confirmed an upload of A at step ${this.stepNo}`));
    this.B = await SimClient.start(account, 'B', this.clock, (h) => this.ack(h, `server confirmed an upload of B at step ${this.stepNo}`));
    this.web = await ThirdParty.start(account);
    // Both link to the (empty) drive: the first sync lists the tree; no faults, so the listing's order never matters.
    for (const c of [this.A, this.B]) await c.sync();
    this.note(`seed ${this.seed}: A and B linked`);
  }

  async tearDown(): Promise<void> {
    await this.A?.close().catch(() => {});
    await this.B?.close().catch(() => {});
    await this.web?.close().catch(() => {});
  }

  async step(step: number): Promise<void> {
    this.stepNo = step;
    this.clock.advance(this.rng.between(1, 900) * 1000);
    const action = await nextAction(this.rng, {
      seed: this.seed,
      step,
      local: async (c) => ({ entries: (await this.client(c).walk(false)).entries }),
      remote: async () => ({ entries: [...(await this.web.tree()).entries()].map(([path, i]) => ({ path, kind: i.kind })) }),
    });
    const key = action.t === 'sync' && action.interfere ? 'sync+interference' : action.t === 'sync' && action.faults ? 'sync+faults' : action.t;
    this.stats.actions[key] = (this.stats.actions[key] ?? 0) + 1;
    this.note(`${step}. ${describe(action)}`);
    await this.perform(action);
  }

  private async perform(a: Action): Promise<void> {
    switch (a.t) {
      case 'noop': return;
      case 'sync': {
        const faults = a.faults ? { rate: a.faults, rng: new Rng(mix(this.seed, this.stepNo, a.c === 'A' ? 1 : 2)) } : undefined;
        const interfere = a.interfere;
        await this.sync(this.client(a.c), { faults, interfere });
        return;
      }
      case 'crash': {
        const faults = a.faults ? { rate: a.faults, rng: new Rng(mix(this.seed, this.stepNo, a.c === 'A' ? 1 : 2)) } : undefined;
        await this.sync(this.client(a.c), { faults, ...(a.after === 'step' ? { crashAfterStep: a.n } : { crashAtCall: a.n }) });
        return;
      }
      default:
        if (a.t.startsWith('server-')) await this.remote(a as RemoteAction);
        else await this.local(a as LocalAction);
    }
  }

  /** The user's action on a client's folder (a note when what it aims at is no longer there); answers the contents it overwrote or deleted. */
  private async local(a: LocalAction): Promise<Set<string>> {
    const c = this.client(a.c);
    const destroyed = new Set<string>();
    const parentOk = async (path: string) => !path.includes('/') || (await c.exists(path.slice(0, path.lastIndexOf('/')))) === 'folder';
    const skip = (why: string) => { this.note(`   (not done: ${why})`); return destroyed; };
    switch (a.t) {
      case 'write':
        if ((await c.exists(a.path)) || !(await parentOk(a.path))) return skip('the name is taken or the folder is gone');
        await c.writeNew(a.path, a.bytes);
        return destroyed;
      case 'edit': {
        if ((await c.exists(a.path)) !== 'file') return skip('the file is gone');
        for (const e of (await c.walk(true)).entries) if (e.path === a.path && e.hash) destroyed.add(e.hash);
        await c.edit(a.path, a.bytes, a.atomic);
        return destroyed;
      }
      case 'mkdir':
        if ((await c.exists(a.path)) || !(await parentOk(a.path))) return skip('the name is taken or the folder is gone');
        await c.mkdir(a.path);
        return destroyed;
      case 'move':
        if (!(await c.exists(a.from)) || (await c.exists(a.to)) || !(await parentOk(a.to)) || a.to.startsWith(`${a.from}/`)) return skip('it is gone or the target is taken');
        await c.move(a.from, a.to);
        return destroyed;
      case 'delete':
        if (!(await c.exists(a.path))) return skip('it is gone');
        for (const e of (await c.walk(true)).entries) if ((e.path === a.path || e.path.startsWith(`${a.path}/`)) && e.hash) destroyed.add(e.hash);
        await c.remove(a.path);
        return destroyed;
    }
  }

  /** The web app's action on the server. */
  private async remote(a: RemoteAction): Promise<void> {
    const tree = await this.web.tree();
    const parentOk = (path: string) => !path.includes('/') || tree.get(path.slice(0, path.lastIndexOf('/')))?.kind === 'folder';
    const nameOf = (path: string) => path.slice(path.lastIndexOf('/') + 1);
    try {
      switch (a.t) {
        case 'server-write': {
          if (tree.has(a.path) || !parentOk(a.path)) { this.note('   (not done: the name is taken or the folder is gone)'); return; }
          const item = await this.web.upload({ parentId: this.web.parentIdOf(tree, a.path), name: nameOf(a.path) }, a.bytes);
          this.ack(item.contentHash!, `web wrote ${a.path} at step ${this.stepNo}`);
          return;
        }
        case 'server-edit': {
          const cur = tree.get(a.path);
          if (cur?.kind !== 'file') { this.note('   (not done: the file is gone)'); return; }
          const item = await this.web.upload({ itemId: cur.id, ifMatch: cur.etag }, a.bytes);
          this.ack(item.contentHash!, `web edited ${a.path} at step ${this.stepNo}`);
          return;
        }
        case 'server-mkdir':
          if (tree.has(a.path) || !parentOk(a.path)) { this.note('   (not done: the name is taken or the folder is gone)'); return; }
          await this.web.api.mkdir(this.web.parentIdOf(tree, a.path), nameOf(a.path));
          return;
        case 'server-move': {
          const cur = tree.get(a.from);
          if (!cur || tree.has(a.to) || !parentOk(a.to) || a.to.startsWith(`${a.from}/`)) { this.note('   (not done: it is gone or the target is taken)'); return; }
          await this.web.api.move(cur.id, { parentId: this.web.parentIdOf(tree, a.to), name: nameOf(a.to) });
          return;
        }
        case 'server-delete': {
          const cur = tree.get(a.path);
          if (!cur) { this.note('   (not done: it is gone)'); return; }
          await this.web.api.trash(cur.id);
          return;
        }
      }
    } catch (e) {
      if (e instanceof ApiError && ['NAME_CONFLICT', 'VERSION_CONFLICT', 'NOT_FOUND'].includes(e.code)) this.note(`   (refused: ${e.code})`);
      else throw e;
    }
  }

  /** One sync, with its faults, interference or crash; outcomes that are not explained by them fail the seed. */
  private async sync(c: SimClient, run: { faults?: { rate: number; rng: Rng }; interfere?: Interference; crashAfterStep?: number; crashAtCall?: number }): Promise<SyncReport | null> {
    const before = (await c.walk(true)).entries;
    let destroyed = new Set<string>();
    const allowDeletes = c.confirmDeletes;
    const interfere = run.interfere;
    this.stats.syncs++;
    let report: SyncReport;
    try {
      report = await c.sync({
        faults: run.faults,
        crashAfterStep: run.crashAfterStep,
        crashAtCall: run.crashAtCall,
        allowDeletes,
        detail: this.detail && this.trace ? (line) => this.trace!(`${this.depth}      ${c.name} ${line}`) : undefined,
        beforeCall: interfere ? async (n) => {
          if (n !== interfere.at) return;
          this.stats.interference++;
          const outer = this.depth;
          this.depth += '   ';
          this.note(`while ${c.name} syncs: ${describe(interfere.action)}`);
          try {
            const a = interfere.action;
            if (a.t === 'sync') await this.sync(this.client(a.c), {});
            else if (a.t.startsWith('server-')) await this.remote(a as RemoteAction);
            else destroyed = await this.local(a as LocalAction);
          } finally {
            this.depth = outer;
          }
        } : undefined,
      });
    } catch (e) {
      this.stats.syncsFailed++;
      const faults = c.net.injected.length ? ` [faults: ${c.net.injected.join(', ')}]` : '';
      for (const f of c.net.injected) this.stats.faults[f.split(' ')[0]] = (this.stats.faults[f.split(' ')[0]] ?? 0) + 1;
      if (e instanceof Crash) {
        this.stats.crashes++;
        this.note(`   -> ${c.name} crashed (${e.message.replace('simulated crash ', '')})${faults}; restarted from its index`);
        c.restart();
        return null;
      }
      if (e instanceof TooManyDeletesError || e instanceof RemoteDriveEmptyError) {
        this.stats.deletePauses++;
        this.note(`   -> ${c.name} paused (${e.name}); the user confirms: the next sync runs with --yes`);
        c.confirmDeletes = true;
        return null;
      }
      // What a fault makes of a request: no answer, a busy server, or an answer whose body broke off (an error
      // answer then has no code but its status: HTTP_412 rather than VERSION_CONFLICT, say).
      if (c.net.injected.length && e instanceof ApiError && (e.code === 'NETWORK' || e.status === 503 || e.code.startsWith('HTTP_') || e.code === 'BAD_RESPONSE')) {
        this.note(`   -> ${c.name} failed: ${e.code}${faults}`);
        return null;
      }
      throw new SimFailure(`sync ${c.name} at step ${this.stepNo} threw, and no simulated fault explains it${faults}: ${(e as Error).stack ?? e}`);
    }
    for (const f of c.net.injected) this.stats.faults[f.split(' ')[0]] = (this.stats.faults[f.split(' ')[0]] ?? 0) + 1;
    if (allowDeletes) c.confirmDeletes = false;
    // A sync that ends saying some local changes are not on the server yet has not acknowledged the folder.
    if (report.pendingLocal === 0) for (const e of before) if (e.hash && !destroyed.has(e.hash)) this.ack(e.hash, `${c.name} had ${e.path} before a successful sync at step ${this.stepNo}`);
    this.stats.conflicts += report.conflicts.length;
    this.stats.skippedSteps += report.skipped.length;
    this.stats.maxRounds = Math.max(this.stats.maxRounds, report.rounds);
    const faults = c.net.injected.length ? ` [faults survived: ${c.net.injected.join(', ')}]` : '';
    this.note(`   -> ${c.name} ok: ${summary(report)}${faults}`);
    if (report.rounds > ROUND_BOUND) throw new SimFailure(`sync ${c.name} at step ${this.stepNo} needed ${report.rounds} rounds (bound ${ROUND_BOUND}): ${JSON.stringify(report.skipped)}`);
    return report;
  }

  /** No more faults: A, B, A, B… until neither has anything to do; then the invariants. Returns the final tree, for the fingerprint. */
  async healAndCheck(): Promise<string> {
    this.stepNo++;
    this.note('heal: no more faults; A and B sync in turn until both have nothing to do');
    let settled = false;
    for (let pass = 1; pass <= HEAL_PASSES && !settled; pass++) {
      this.stats.healPasses = pass;
      const quiet: boolean[] = [];
      for (const c of [this.A, this.B]) {
        let r = await this.sync(c, {});
        if (r === null) r = await this.sync(c, {}); // a delete pause the user then confirms
        if (r === null) throw new SimFailure(`heal: ${c.name} did not complete a sync without faults`);
        if (r.problems.length) throw new SimFailure(`heal: ${c.name} reports problems: ${JSON.stringify(r.problems)}`);
        quiet.push(r.rounds === 0);
      }
      settled = quiet.every(Boolean);
    }
    if (!settled) throw new SimFailure(`heal: A and B still had work after ${HEAL_PASSES} passes each`);
    return checkFinalState(this.A, this.B, this.web, this.acked, (l) => this.note(l));
  }
}

function summary(r: SyncReport): string {
  const parts = [`rounds ${r.rounds}`];
  for (const k of ['uploaded', 'downloaded', 'moved', 'deleted', 'created'] as const) if (r[k]) parts.push(`${k} ${r[k]}`);
  if (r.conflicts.length) parts.push(`conflicts ${r.conflicts.join(', ')}`);
  if (r.skipped.length) parts.push(`skipped ${r.skipped.length} (${[...new Set(r.skipped.map((s) => s.reason.split(':')[0]))].join('; ')})`);
  if (r.pendingLocal) parts.push(`pending ${r.pendingLocal}`);
  return parts.join(', ');
}
