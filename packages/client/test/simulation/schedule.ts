/**
 * The schedule: one action at a time, drawn from the seeded stream and
 * aimed at what is there now (the acting client's folder, or the server's
 * tree for the third party), so renames and deletes hit real items. Names
 * come from a tiny alphabet, so the two clients and the web app keep
 * colliding (same name, different content; a file here, a folder there).
 *
 * Actions are plain data; `describe` prints them as the replay log.
 */
import { contentFor, type Rng } from './rng.ts';
import type { Entry } from './sim-client.ts';

export type Who = 'A' | 'B';

export type LocalAction =
  | { t: 'write'; c: Who; path: string; bytes: Buffer }
  | { t: 'edit'; c: Who; path: string; bytes: Buffer; atomic: boolean }
  | { t: 'mkdir'; c: Who; path: string }
  | { t: 'move'; c: Who; from: string; to: string }
  | { t: 'delete'; c: Who; path: string };

export type RemoteAction =
  | { t: 'server-write'; path: string; bytes: Buffer }
  | { t: 'server-edit'; path: string; bytes: Buffer }
  | { t: 'server-mkdir'; path: string }
  | { t: 'server-move'; from: string; to: string }
  | { t: 'server-delete'; path: string };

/** Something that happens while a sync runs, just before the sync's nth API call. */
export type Interference = { at: number; action: LocalAction | RemoteAction | { t: 'sync'; c: Who } };

export type Action =
  | LocalAction
  | RemoteAction
  | { t: 'sync'; c: Who; faults: number; interfere?: Interference }
  /** A sync that crashes: after its nth step (done, not yet recorded), or before its nth API call. */
  | { t: 'crash'; c: Who; after: 'step' | 'call'; n: number; faults: number }
  | { t: 'noop'; why: string };

export const NAMES = ['a', 'b', 'c', 'd.txt', 'e.txt', 'f.md'];
/** Folders deeper than this get no new children (the trees stay small, so actions keep meeting each other). */
const MAX_DEPTH = 2;

export interface Listing {
  entries: Entry[];
}

export interface GenContext {
  seed: number;
  step: number;
  local(c: Who): Promise<Listing>;
  remote(): Promise<Listing>;
}

const depth = (path: string) => (path === '' ? 0 : path.split('/').length);
const parentOf = (path: string) => (path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : '');
const join = (parent: string, name: string) => (parent ? `${parent}/${name}` : name);

function folders(l: Listing): string[] {
  return ['', ...l.entries.filter((e) => e.kind === 'folder').map((e) => e.path)];
}

function freeNames(l: Listing, parent: string): string[] {
  const taken = new Set(l.entries.filter((e) => parentOf(e.path) === parent).map((e) => e.path.slice(parent ? parent.length + 1 : 0)));
  return NAMES.filter((n) => !taken.has(n));
}

/** A path for something new: a folder not too deep with a free name, or null. */
function newPath(rng: Rng, l: Listing): string | null {
  const options = folders(l).filter((f) => depth(f) < MAX_DEPTH && freeNames(l, f).length > 0);
  if (!options.length) return null;
  const parent = rng.pick(options);
  return join(parent, rng.pick(freeNames(l, parent)));
}

/** A new place for an item: a folder outside it, with a free name (its own name when free, half the time). */
function movePath(rng: Rng, l: Listing, from: string): string | null {
  const own = from.slice(from.lastIndexOf('/') + 1);
  const targets = folders(l).filter((f) => f !== from && !f.startsWith(`${from}/`) && depth(f) < MAX_DEPTH + 1 && freeNames(l, f).length > 0);
  if (!targets.length) return null;
  const parent = rng.pick(targets);
  const free = freeNames(l, parent);
  const name = free.includes(own) && rng.chance(0.5) ? own : rng.pick(free);
  return join(parent, name);
}

function localAction(rng: Rng, ctx: GenContext, c: Who, l: Listing, author: string): LocalAction | { t: 'noop'; why: string } {
  const files = l.entries.filter((e) => e.kind === 'file');
  let kind = rng.weighted([['write', 14], ['edit', 12], ['mkdir', 5], ['move', 10], ['delete', 6]] as const);
  if ((kind === 'edit' && !files.length) || ((kind === 'move' || kind === 'delete') && !l.entries.length)) kind = 'write';
  if (kind === 'edit') return { t: 'edit', c, path: rng.pick(files).path, bytes: contentFor(rng, ctx.seed, ctx.step, author), atomic: rng.chance(0.4) };
  if (kind === 'delete') return { t: 'delete', c, path: rng.pick(l.entries).path };
  if (kind === 'move') {
    const from = rng.pick(l.entries).path;
    const to = movePath(rng, l, from);
    return to ? { t: 'move', c, from, to } : { t: 'noop', why: `no place to move ${from} to` };
  }
  const path = newPath(rng, l);
  if (!path) return { t: 'noop', why: 'no free name' };
  return kind === 'mkdir' ? { t: 'mkdir', c, path } : { t: 'write', c, path, bytes: contentFor(rng, ctx.seed, ctx.step, author) };
}

function remoteAction(rng: Rng, ctx: GenContext, l: Listing, author: string): RemoteAction | { t: 'noop'; why: string } {
  const files = l.entries.filter((e) => e.kind === 'file');
  let kind = rng.weighted([['write', 4], ['edit', 5], ['mkdir', 1], ['move', 2], ['delete', 2]] as const);
  if ((kind === 'edit' && !files.length) || ((kind === 'move' || kind === 'delete') && !l.entries.length)) kind = 'write';
  if (kind === 'edit') return { t: 'server-edit', path: rng.pick(files).path, bytes: contentFor(rng, ctx.seed, ctx.step, author) };
  if (kind === 'delete') return { t: 'server-delete', path: rng.pick(l.entries).path };
  if (kind === 'move') {
    const from = rng.pick(l.entries).path;
    const to = movePath(rng, l, from);
    return to ? { t: 'server-move', from, to } : { t: 'noop', why: `no place to move ${from} to` };
  }
  const path = newPath(rng, l);
  if (!path) return { t: 'noop', why: 'no free name' };
  return kind === 'mkdir' ? { t: 'server-mkdir', path } : { t: 'server-write', path, bytes: contentFor(rng, ctx.seed, ctx.step, author) };
}

function faultRate(rng: Rng): number {
  return rng.chance(0.55) ? 0 : rng.pick([0.05, 0.15, 0.3]);
}

export async function nextAction(rng: Rng, ctx: GenContext): Promise<Action> {
  const c: Who = rng.chance(0.5) ? 'A' : 'B';
  const kind = rng.weighted([['local', 47], ['sync', 22], ['crash', 6], ['server', 7]] as const);
  if (kind === 'local') return localAction(rng, ctx, c, await ctx.local(c), c);
  if (kind === 'server') return remoteAction(rng, ctx, await ctx.remote(), 'web');
  if (kind === 'crash') {
    const after = rng.chance(0.6) ? 'step' : 'call';
    return { t: 'crash', c, after, n: after === 'step' ? rng.between(1, 6) : rng.between(1, 12), faults: rng.chance(0.2) ? faultRate(rng) : 0 };
  }
  const faults = faultRate(rng);
  if (!rng.chance(0.2)) return { t: 'sync', c, faults };
  // Something happens while the sync runs: the user, the web app, or the other client syncing.
  const at = rng.between(1, 10);
  const what = rng.weighted([['local', 2], ['server', 1], ['other', 1]] as const);
  const other: Who = c === 'A' ? 'B' : 'A';
  const action = what === 'other' ? { t: 'sync' as const, c: other }
    : what === 'local' ? localAction(rng, ctx, c, await ctx.local(c), `${c}-during-sync`)
    : remoteAction(rng, ctx, await ctx.remote(), 'web-during-sync');
  if (action.t === 'noop') return { t: 'sync', c, faults };
  return { t: 'sync', c, faults, interfere: { at, action } };
}

export function describe(a: Action | LocalAction | RemoteAction | { t: 'sync'; c: Who; faults?: number; interfere?: Interference }): string {
  const size = (b: Buffer) => `${b.length} B`;
  switch (a.t) {
    case 'write': return `${a.c}: write ${a.path} (${size(a.bytes)})`;
    case 'edit': return `${a.c}: edit ${a.path} (${a.atomic ? 'atomic save, ' : ''}${size(a.bytes)})`;
    case 'mkdir': return `${a.c}: mkdir ${a.path}`;
    case 'move': return `${a.c}: move ${a.from} -> ${a.to}`;
    case 'delete': return `${a.c}: delete ${a.path}`;
    case 'server-write': return `web: write ${a.path} (${size(a.bytes)})`;
    case 'server-edit': return `web: edit ${a.path} (${size(a.bytes)})`;
    case 'server-mkdir': return `web: mkdir ${a.path}`;
    case 'server-move': return `web: move ${a.from} -> ${a.to}`;
    case 'server-delete': return `web: delete ${a.path}`;
    case 'sync': return `sync ${a.c}${a.faults ? ` (faults ${a.faults})` : ''}${a.interfere ? ` [before call ${a.interfere.at}: ${describe(a.interfere.action)}]` : ''}`;
    case 'crash': return `sync ${a.c} crashing ${a.after === 'step' ? `after step ${a.n}` : `before API call ${a.n}`}${a.faults ? ` (faults ${a.faults})` : ''}`;
    case 'noop': return `(nothing: ${a.why})`;
  }
}
