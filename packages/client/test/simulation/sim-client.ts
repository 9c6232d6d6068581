/**
 * The simulation's parties, all real: a sync client (a real folder, a real
 * SQLite index, the real ApiClient over real HTTP through a FaultyNet, the
 * real sync engine), and a third party (the web app: the same account's API
 * used directly, without faults).
 *
 * A client "crashes" by having its sync throw at a chosen point; it then
 * comes back the way a restarted process does: the index is closed and
 * opened again from its file, and a new API client is made, so only what
 * was persisted carries over.
 *
 * The user's own file operations never free an inode while a seed runs:
 * deleted items and the old file of an atomic save are moved (or linked)
 * to a graveyard outside the sync folder. A freed inode handed to the next
 * new file would make the scanner read "new file" as "the deleted file,
 * moved and edited" — legitimate, but it depends on the file system's
 * allocator, and a failing seed must replay exactly.
 */
import { link, mkdir, mkdtemp, readdir, readFile, rename, rm, utimes, writeFile, lstat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { syncApiOf } from '../../src/accounts/open-account.ts';
import { SyncIndex } from '../../src/index/sync-index.ts';
import { ApiClient } from '../../src/remote/api-client.ts';
import { MemoryCredentialStore, type Credentials } from '../../src/remote/credentials.ts';
import type { RemoteItem } from '../../src/remote/types.ts';
import { uploadFile } from '../../src/remote/upload-file.ts';
import { ROOT_MARKER } from '../../src/scanner/ignore.ts';
import type { Op } from '../../src/reconciler/plan.ts';
import { syncOnce, type SyncApi, type SyncReport } from '../../src/sync/sync-engine.ts';
import { FaultyNet } from './net.ts';
import { contentHash, type Rng } from './rng.ts';

/** A fresh account on the server, and a way to sign a new device in to it. */
export interface SimAccount {
  url: string;
  signIn(deviceName: string): Promise<Credentials>;
}

/**
 * The simulated clock: syncs read it as `now`, and the user's writes stamp
 * files with it (so an edit always changes the modification time the
 * scanner compares, however fast the simulation runs). It starts far from
 * the real time, which stamps the files the client itself writes.
 */
export class SimClock {
  t: number;
  constructor(start = Date.parse('2030-06-01T09:00:00Z')) {
    this.t = start;
  }
  readonly now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

/** A crash of the client process at a chosen point of a sync. */
export class Crash extends Error {
  constructor(where: string) {
    super(`simulated crash ${where}`);
    this.name = 'Crash';
  }
}

export interface SyncRun {
  /** Fault rate of this sync's requests, with the stream deciding which. */
  faults?: { rate: number; rng: Rng };
  /** Called before the nth call the engine makes to the API (1-based): other things happen meanwhile. */
  beforeCall?: (n: number, what: string) => Promise<void>;
  /** Crash right after the engine finished its nth step (the step done, its base entry not yet written). */
  crashAfterStep?: number;
  /** Crash just before the engine's nth API call. */
  crashAtCall?: number;
  allowDeletes?: boolean;
  /** Each round's plan and each step's outcome, for a closer look at a replayed seed. */
  detail?: (line: string) => void;
}

function showOp(op: Op): string {
  const what = op.type === 'delete' ? op.id.slice(0, 8) : `${op.name} [${op.id.slice(0, 8)}]`;
  return `${op.side} ${op.type} ${what}`;
}

/** API calls that carry out a step: the gate stays closed behind them until the step is over (see stepOf). */
const STEP_CALLS = new Set(['mkdir', 'move', 'trash', 'upload', 'uploadBatch', 'download']);

/**
 * Which step a call carries out. A download's step goes on after the call (the bytes, then the
 * file put in place), so the gate waits for the step's report; an upload's ends with the call.
 */
function stepOf(call: string, args: unknown[]): (op: Op) => boolean {
  if (call === 'download') return (op) => op.side === 'local' && op.id === args[0];
  return (op) => op.side === 'remote' && op.type !== 'write'; // mkdir, move, trash: one at a time anyway
}

/**
 * Lets one API call of a sync happen at a time, in the order the engine
 * asks: the engine downloads four files and uploads three at once, and
 * their requests would otherwise interleave as the network pleases (and
 * with them the fault decisions, the steps a crash cuts off, and the calls
 * interference waits for). A call that carries out a step holds the gate
 * until the engine reports that step (or the call, or a download's body,
 * fails), and lets the next one in only after everything already queued
 * has run (a macrotask later). The engine lets steps already under way
 * finish when one fails, and so does the gate; a crash, though, refuses
 * whatever still waits, like work a dying process never did.
 * So the same seed makes the same requests in the same order.
 */
class Gate {
  /** The step the call inside holds the gate for. */
  holder: ((op: Op) => boolean) | null = null;
  /** A call waited far longer than any call takes: the gate's idea of the engine is out of date. */
  wedged = false;
  private busy = false;
  private closed = false;
  private readonly waiting: { go: () => void; refuse: (e: Error) => void }[] = [];
  private pendingLeave: NodeJS.Immediate | null = null;

  async enter(): Promise<void> {
    if (this.closed) throw new Crash('after the sync ended (its work was cut off)');
    if (!this.busy) {
      this.busy = true;
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((go, refuse) => {
        this.waiting.push({ go, refuse });
        // Every call ahead of this one ends in well under this; waiting longer means the gate is wedged.
        timer = setTimeout(() => {
          this.wedged = true;
          refuse(new Error('simulation gate: an API call waited 20 s'));
        }, 20_000);
      });
    } finally {
      clearTimeout(timer);
    }
  }

  leave(): void {
    if (this.closed) return;
    this.holder = null;
    const next = this.waiting.shift();
    if (next) next.go();
    else this.busy = false;
  }

  /** Leaves once the microtasks queued now have run: a step that fails right after its report stops the sync first. */
  leaveSoon(): void {
    if (!this.busy || this.pendingLeave) return;
    this.pendingLeave = setImmediate(() => {
      this.pendingLeave = null;
      this.leave();
    });
  }

  /** A crash: nothing queued or still to come gets through. */
  close(): void {
    this.closed = true;
    if (this.pendingLeave) clearImmediate(this.pendingLeave);
    for (const w of this.waiting.splice(0)) w.refuse(new Crash('after the sync ended (its work was cut off)'));
  }
}

const WEDGED = 'simulation gate: an API call waited 20 s for another to finish its step; the gate (sim-client.ts) no longer matches how the engine runs steps';

/** A download whose bytes break off for good fails its step: the gate opens for the next call (the engine lets those under way finish). */
function bodyFailureLeaves<T extends { body: AsyncIterable<Uint8Array> }>(download: T, gate: Gate): T {
  const inner = download.body;
  async function* body(): AsyncGenerator<Uint8Array> {
    try {
      yield* inner;
    } catch (e) {
      gate.leaveSoon();
      throw e;
    }
  }
  return { ...download, body: body() };
}

export interface Entry {
  path: string;
  kind: 'file' | 'folder';
  /** Content hash, for files. */
  hash?: string;
}

export class SimClient {
  readonly name: string;
  readonly dir: string;
  readonly folder: string;
  readonly graveyard: string;
  readonly net: FaultyNet;
  private readonly url: string;
  private readonly credentials: MemoryCredentialStore;
  private readonly clock: SimClock;
  private buried = 0;
  api!: ApiClient;
  index!: SyncIndex;
  /** The user answered a "too many deletes" pause with --yes: the next sync lets the deletes through. */
  confirmDeletes = false;

  private constructor(name: string, url: string, dir: string, credentials: MemoryCredentialStore, clock: SimClock, onAck: (hash: string) => void) {
    this.name = name;
    this.url = url;
    this.dir = dir;
    this.folder = join(dir, 'Coffer');
    this.graveyard = join(dir, 'graveyard');
    this.credentials = credentials;
    this.clock = clock;
    this.net = new FaultyNet(onAck);
    this.open();
  }

  static async start(account: SimAccount, name: string, clock: SimClock, onAck: (hash: string) => void): Promise<SimClient> {
    const dir = await mkdtemp(join(tmpdir(), `coffer-sim-${name}-`));
    const c = new SimClient(name, account.url, dir, new MemoryCredentialStore(await account.signIn(name)), clock, onAck);
    await mkdir(c.folder);
    await mkdir(c.graveyard);
    const drive = await c.api.drive();
    await writeFile(join(c.folder, ROOT_MARKER), JSON.stringify({ rootId: drive.rootId }));
    return c;
  }

  private open(): void {
    this.api = new ApiClient({ baseUrl: this.url, credentials: this.credentials, fetch: this.net.fetch, sleep: async () => {} });
    this.index = new SyncIndex(join(this.dir, 'index.sqlite'));
  }

  /** After a crash: what a restarted process has, the index file and the saved credentials. */
  restart(): void {
    this.index.close();
    this.open();
  }

  async sync(run: SyncRun = {}): Promise<SyncReport> {
    const inner = syncApiOf(this.api) as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    const api: Record<string, (...args: unknown[]) => Promise<unknown>> = {};
    const gate = new Gate();
    let calls = 0;
    let crashed: Crash | null = null;
    for (const [key, fn] of Object.entries(inner)) {
      const stepBound = STEP_CALLS.has(key);
      api[key] = async (...args: unknown[]) => {
        await gate.enter();
        if (stepBound) gate.holder = stepOf(key, args);
        try {
          const n = ++calls;
          if (run.crashAtCall === n) {
            gate.close();
            throw (crashed = new Crash(`before API call ${n} (${key})`));
          }
          await run.beforeCall?.(n, key);
          const result = await fn(...args);
          if (!stepBound) gate.leave();
          else if (key === 'upload' || key === 'uploadBatch') gate.leaveSoon(); // nothing but bookkeeping until the report
          else if (key === 'download') return bodyFailureLeaves(result as { body: AsyncIterable<Uint8Array> }, gate);
          return result;
        } catch (e) {
          if (stepBound) gate.leaveSoon();
          else gate.leave();
          throw e;
        }
      };
    }
    let steps = 0;
    this.net.injected = [];
    if (run.faults) this.net.arm(run.faults.rate, run.faults.rng);
    try {
      const report = await syncOnce(api as unknown as SyncApi, this.index, {
        folder: this.folder,
        deviceName: this.name,
        now: this.clock.now,
        allowDeletes: run.allowDeletes,
        onPlan: run.detail ? (p) => run.detail!(`plan: ${p.ops.map(showOp).join('; ') || '(bookkeeping only)'}`) : undefined,
        onStep: (op, outcome) => {
          run.detail?.(`  step ${steps + 1}: ${showOp(op)}: ${outcome.done ? 'done' : `skipped (${outcome.reason})`}`);
          steps++;
          if (run.crashAfterStep === steps) {
            gate.close();
            throw (crashed = new Crash(`after step ${steps}`));
          }
          if (gate.holder?.(op)) gate.leaveSoon();
        },
      });
      if (gate.wedged) throw new Error(WEDGED);
      // A crash swallowed by the engine (its last call, the pending-changes report, ignores failures) is still a crash.
      if (crashed) throw crashed;
      return report;
    } catch (e) {
      throw gate.wedged ? new Error(WEDGED, { cause: e }) : e;
    } finally {
      gate.close();
      this.net.disarm();
    }
  }

  // ---- the user's file operations -------------------------------------------------

  private grave(): string {
    return join(this.graveyard, String(++this.buried));
  }

  private async stamp(path: string): Promise<void> {
    const t = new Date(this.clock.now());
    await utimes(path, t, t);
  }

  async writeNew(path: string, bytes: Buffer): Promise<void> {
    await writeFile(join(this.folder, path), bytes, { flag: 'wx' });
    await this.stamp(join(this.folder, path));
  }

  /** An edit: in place (same inode), or an editor's atomic save (a new file renamed over the old one). */
  async edit(path: string, bytes: Buffer, atomic: boolean): Promise<void> {
    const abs = join(this.folder, path);
    if (atomic) {
      const temp = this.grave();
      await writeFile(temp, bytes);
      await this.stamp(temp);
      await link(abs, this.grave());
      await rename(temp, abs);
    } else {
      await writeFile(abs, bytes);
      await this.stamp(abs);
    }
  }

  async mkdir(path: string): Promise<void> {
    await mkdir(join(this.folder, path));
  }

  async move(from: string, to: string): Promise<void> {
    await rename(join(this.folder, from), join(this.folder, to));
  }

  async remove(path: string): Promise<void> {
    await rename(join(this.folder, path), this.grave());
  }

  async exists(path: string): Promise<'file' | 'folder' | null> {
    const st = await lstat(join(this.folder, path)).catch(() => null);
    return st ? (st.isDirectory() ? 'folder' : 'file') : null;
  }

  /** The folder as the user sees it (client files left out), and the client's own files found anywhere. */
  async walk(hashes: boolean): Promise<{ entries: Entry[]; temps: string[] }> {
    const entries: Entry[] = [];
    const temps: string[] = [];
    const visit = async (rel: string): Promise<void> => {
      for (const name of (await readdir(join(this.folder, rel))).sort()) {
        const path = rel ? `${rel}/${name}` : name;
        if (name.startsWith('.coffer-')) {
          if (path !== ROOT_MARKER) temps.push(path);
          continue;
        }
        const st = await lstat(join(this.folder, path));
        if (st.isDirectory()) {
          entries.push({ path, kind: 'folder' });
          await visit(path);
        } else entries.push({ path, kind: 'file', ...(hashes ? { hash: contentHash(await readFile(join(this.folder, path))) } : {}) });
      }
    };
    await visit('');
    return { entries, temps };
  }

  async close(): Promise<void> {
    this.index.close();
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Someone else on the same account (the web app): changes the server directly. */
export class ThirdParty {
  readonly api: ApiClient;
  private readonly url: string;
  private readonly credentials: MemoryCredentialStore;
  private readonly dir: string;
  private rootId = '';

  private constructor(url: string, credentials: MemoryCredentialStore, dir: string) {
    this.url = url;
    this.credentials = credentials;
    this.dir = dir;
    this.api = new ApiClient({ baseUrl: url, credentials, sleep: async () => {} });
  }

  static async start(account: SimAccount): Promise<ThirdParty> {
    const t = new ThirdParty(account.url, new MemoryCredentialStore(await account.signIn('web')), await mkdtemp(join(tmpdir(), 'coffer-sim-web-')));
    t.rootId = (await t.api.drive()).rootId;
    return t;
  }

  /** The server's tree by path (root left out), sorted. */
  async tree(): Promise<Map<string, RemoteItem>> {
    const items = await this.api.listTree(this.rootId);
    const byId = new Map(items.map((i) => [i.id, i]));
    const pathOf = (i: RemoteItem): string => (i.parentId === this.rootId || i.parentId === null ? i.name : `${pathOf(byId.get(i.parentId)!)}/${i.name}`);
    return new Map(items.map((i) => [pathOf(i), i] as const).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  parentIdOf(tree: Map<string, RemoteItem>, path: string): string {
    const cut = path.lastIndexOf('/');
    return cut < 0 ? this.rootId : tree.get(path.slice(0, cut))!.id;
  }

  /** A new file, or a new version of one (conditional on the version it saw). */
  async upload(target: { parentId: string; name: string } | { itemId: string; ifMatch: string }, bytes: Buffer): Promise<RemoteItem> {
    const temp = join(this.dir, 'upload');
    await writeFile(temp, bytes);
    return (await uploadFile(this.api, temp, target)).item;
  }

  private async get<T>(path: string, method = 'GET'): Promise<T> {
    const creds = await this.credentials.load();
    const res = await fetch(this.url + path, { method, headers: { authorization: `Bearer ${creds!.accessToken}` } });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return await res.json() as T;
  }

  async versions(id: string): Promise<{ contentHash: string }[]> {
    return (await this.get<{ versions: { contentHash: string }[] }>(`/api/v1/items/${id}/versions`)).versions;
  }

  async trash(): Promise<RemoteItem[]> {
    const out: RemoteItem[] = [];
    for (let cursor = ''; ;) {
      const page = await this.get<{ items: RemoteItem[]; nextCursor: string | null }>(`/api/v1/trash?limit=1000${cursor ? `&cursor=${cursor}` : ''}`);
      out.push(...page.items);
      if (!page.nextCursor) return out;
      cursor = page.nextCursor;
    }
  }

  async restore(id: string): Promise<void> {
    await this.get(`/api/v1/trash/${id}/restore`, 'POST');
  }

  async close(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}
