/**
 * Pack compaction: gives back the space of collected chunks that sit in packs
 * still holding live ones. A pack goes whole only once no row names any of its
 * members (the orphan sweep), so one live chunk used to keep all its 16 MiB.
 *
 * A pack past the orphan grace (no upload can still be recording rows into it)
 * whose live chunks fill less than half of it has them copied, each checked
 * against its SHA-256 (a damaged one stays where it is, for `admin check
 * --deep` to report), into a new pack of the same owner, several small ones
 * into one. The new pack is sealed (durable) before any row names it; then one
 * transaction points each row at its copy, only if it still names the old one
 * (a row deleted or moved meanwhile is left alone: the copy is dead bytes),
 * and retires the old pack (retired_blobs). A download planned before the move
 * may still read the old keys, so a retired pack is deleted only once retired
 * for RETIRED_PACK_GRACE_MS and no row names it; the orphan sweep leaves a
 * younger retired pack alone.
 *
 * Several processes may compact at once: of two compactors of one pack, the
 * second moves nothing, and its new pack, which nothing names, is deleted at
 * once (or, had it crashed, by the orphan sweep later). Each run does bounded
 * work and the next goes on where it stopped.
 */
import type { BlobPack, BlobStore } from '../blobstore/blob-store.ts';
import { PACK_KEY_PREFIX, packMemberKey, parsePackMember } from '../blobstore/packed.blob-store.ts';
import { blobBirthTime } from '../db/ids.ts';
import { newPackKey } from './chunk-packer.ts';
import { chunkRepository, type PackedChunkRow } from '../repositories/chunk.repository.ts';
import { retiredBlobRepository } from '../repositories/retired-blob.repository.ts';
import { PACK_BYTES } from './chunk-packer.ts';
import { sha256Hex } from './chunk-writer.ts';
import type { ServiceDeps } from './context.ts';
import type { Executor } from '../repositories/executor.ts';

/** How long a retired pack stays readable for downloads planned before its chunks moved. */
export const RETIRED_PACK_GRACE_MS = 60 * 60_000;
/** A run copies at most this many live bytes and compacts at most this many packs; the rest waits for the next run. */
const COPY_BYTES_PER_RUN = 512 * 1024 * 1024;
const PACKS_PER_RUN = 256;
/** A run reads at most this many chunk rows (about SCAN_PAGE more), a page at a time: a large store is looked through over several runs. */
const SCAN_ROWS_PER_RUN = 200_000;
const SCAN_PAGE = 1000;
/** Retired packs read per statement. */
const RETIRED_PAGE = 100;
/** Every pack member key follows this. */
const SCAN_START = PACK_KEY_PREFIX;

export interface CompactionReport {
  /** Packs whose live chunks were moved to a new pack (the old ones are retired). */
  packsCompacted: number;
  /** What the store gives back once those packs are deleted (after the retirement grace): their bytes less the new packs'. */
  bytesReclaimed: number;
}

/** A pack worth compacting: its stored size, and the rows that name its members. */
interface Candidate { pack: string; owner: string; size: number; live: number; rows: PackedChunkRow[] }

export class PackCompactor {
  readonly #deps: Pick<ServiceDeps, 'db' | 'blobs' | 'clock'>;
  readonly #durable: () => Promise<void>;
  /** Where the next run looks on from: past the last pack this one judged, when it stopped at a bound. */
  #resumeAfter = SCAN_START;

  /** `durable` resolves once committed metadata is on disk (see MaintenanceService). */
  constructor(deps: Pick<ServiceDeps, 'db' | 'blobs' | 'clock'>, durable: () => Promise<void>) {
    this.#deps = deps;
    this.#durable = durable;
  }

  /** Compacts packs born more than `ageMs` ago whose live chunks fill less than half of them. Nothing where the store makes no packs. */
  async compact(ageMs: number): Promise<CompactionReport> {
    const report: CompactionReport = { packsCompacted: 0, bytesReclaimed: 0 };
    const openPack = this.#deps.blobs.openPack;
    if (!openPack) return report;
    for (const group of groupByOwner(await this.#candidates(this.#deps.clock.now() - ageMs))) {
      const r = await this.#rewrite(openPack, group);
      report.packsCompacted += r.packsCompacted;
      report.bytesReclaimed += r.bytesReclaimed;
    }
    return report;
  }

  /**
   * Deletes packs retired at least `graceMs` ago that no row names, then forgets their retirement. One still named
   * (a chunk that could not be copied) is forgotten and kept: a pack like any other again.
   */
  async removeRetired(graceMs: number): Promise<number> {
    const { db, blobs, clock } = this.#deps;
    const cutoff = clock.now() - graceMs;
    let removed = 0;
    let synced = false;
    for (let after = ''; ;) {
      const page = await retiredBlobRepository.retiredBy(db, cutoff, after, RETIRED_PAGE);
      for (const r of page) {
        if (await unusedBlob(db, r.key, cutoff)) {
          // The moves off it must be on disk before it goes (SQLite; see MaintenanceService.collectChunks).
          if (!synced) await this.#durable();
          synced = true;
          await blobs.delete(r.key);
          removed++;
        }
        await retiredBlobRepository.forget(db, r);
      }
      if (page.length < RETIRED_PAGE) return removed;
      after = page.at(-1)!.key;
    }
  }

  /** Packs to compact, in key order (by owner, then by age), within this run's bounds. */
  async #candidates(bornBefore: number): Promise<Candidate[]> {
    const found: Candidate[] = [];
    let copy = 0;
    let scanned = 0;
    let resume = SCAN_START; // the whole range was looked through: the next run starts over
    for await (const { pack, rows } of this.#packs(this.#resumeAfter)) {
      scanned += rows.length;
      const c = await this.#judge(pack, rows, bornBefore);
      if (c) {
        found.push(c);
        copy += c.live;
      }
      if (found.length >= PACKS_PER_RUN || copy >= COPY_BYTES_PER_RUN || scanned >= SCAN_ROWS_PER_RUN) {
        resume = rows.at(-1)!.blob_key;
        break;
      }
    }
    this.#resumeAfter = resume;
    return found;
  }

  /** A candidate if the pack is old enough and less than half of its bytes are live. */
  async #judge(pack: string, rows: PackedChunkRow[], bornBefore: number): Promise<Candidate | null> {
    const born = blobBirthTime(pack);
    if (born === null || born >= bornBefore) return null;
    let live = 0;
    for (const r of rows) live += r.size;
    const st = await this.#deps.blobs.stat(pack);
    if (!st || live * 2 >= st.size) return null;
    return { pack, owner: pack.slice(PACK_KEY_PREFIX.length, pack.indexOf('/', PACK_KEY_PREFIX.length)), size: st.size, live, rows };
  }

  /** Every pack that rows name, with those rows, from the first member key after `after` to the end. */
  async *#packs(after: string): AsyncGenerator<{ pack: string; rows: PackedChunkRow[] }> {
    let pack: string | null = null;
    let rows: PackedChunkRow[] = [];
    for (;;) {
      const page = await chunkRepository.packedAfter(this.#deps.db, after, SCAN_PAGE);
      for (const r of page) {
        const m = parsePackMember(r.blob_key);
        if (!m) continue;
        if (m.pack !== pack) {
          if (pack !== null) yield { pack, rows };
          pack = m.pack;
          rows = [];
        }
        rows.push(r);
      }
      if (page.length < SCAN_PAGE) break;
      after = page.at(-1)!.blob_key;
    }
    if (pack !== null) yield { pack, rows };
  }

  /** Copies the live chunks of a group of one owner's packs into one new pack, then moves their rows to it. */
  async #rewrite(openPack: () => BlobPack, group: Candidate[]): Promise<CompactionReport> {
    const { db, blobs, clock } = this.#deps;
    const moves: { id: string; from: string; pack: string; offset: number; size: number }[] = [];
    /** Old packs some chunk stays in (unreadable, damaged, or held elsewhere): they are not given back yet. */
    const kept = new Set<string>();
    const pack = openPack();
    const key = newPackKey(group[0]!.owner, clock.now());
    try {
      for (const c of group) {
        for (const r of c.rows) {
          const data = await readChecked(blobs, r);
          if (!data) {
            kept.add(c.pack);
            continue;
          }
          const { offset, written } = pack.append(data);
          await written; // one chunk in memory at a time
          moves.push({ id: r.id, from: r.blob_key, pack: c.pack, offset, size: data.byteLength });
        }
      }
      if (!moves.length) {
        await pack.abort();
        return { packsCompacted: 0, bytesReclaimed: 0 };
      }
      await pack.seal(key); // durable before any row names it
    } catch (e) {
      await pack.abort();
      throw e;
    }
    const vacated = new Set<string>();
    const at = clock.now();
    const moved = await db.transaction().execute(async (trx) => {
      const current = await chunkRepository.lockToMove(trx, moves.map((m) => m.id));
      let n = 0;
      for (const m of moves) {
        const now = current.get(m.id);
        if (now === undefined) kept.add(m.pack); // deleted meanwhile, or (PostgreSQL) held by an upload's transaction: left as it is
        if (now !== m.from) continue; // …or moved by another compactor
        if (await chunkRepository.repoint(trx, m.id, m.from, packMemberKey(key, m.offset, m.size))) {
          n++;
          vacated.add(m.pack);
        }
      }
      await retiredBlobRepository.retire(trx, [...vacated], at);
      return n;
    });
    if (moved === 0) {
      await blobs.delete(key); // nothing names it, and no one else knows its key
      return { packsCompacted: 0, bytesReclaimed: 0 };
    }
    let freed = 0;
    for (const c of group) if (vacated.has(c.pack) && !kept.has(c.pack)) freed += c.size;
    return { packsCompacted: vacated.size, bytesReclaimed: Math.max(0, freed - pack.size) };
  }
}

/**
 * Whether a blob may go: no row names it, and it is not a pack retired after `retiredCutoff`. Rows first, then the
 * retirement: a compactor moves rows off a pack and renews its retirement in one transaction, so once no row names
 * it, a renewal made meanwhile shows.
 */
export async function unusedBlob(db: Executor, key: string, retiredCutoff: number): Promise<boolean> {
  return !(await chunkRepository.blobInUse(db, key)) && !(await retiredBlobRepository.retiredAfter(db, key, retiredCutoff));
}

/** Consecutive candidates of one owner, as many as fit in a pack together (each holds less than half a pack). */
function* groupByOwner(candidates: Candidate[]): Generator<Candidate[]> {
  let group: Candidate[] = [];
  let bytes = 0;
  for (const c of candidates) {
    if (group.length && (c.owner !== group[0]!.owner || bytes + c.live > PACK_BYTES)) {
      yield group;
      group = [];
      bytes = 0;
    }
    group.push(c);
    bytes += c.live;
  }
  if (group.length) yield group;
}

/** A member's bytes if they are what its row says (size and SHA-256); null for a missing, unreadable or damaged one. */
async function readChecked(blobs: BlobStore, r: PackedChunkRow): Promise<Buffer | null> {
  const parts: Buffer[] = [];
  let n = 0;
  try {
    for await (const b of await blobs.get(r.blob_key)) {
      parts.push(b as Buffer);
      n += (b as Buffer).byteLength;
      if (n > r.size) return null; // more than recorded: not this chunk
    }
  } catch {
    return null; // left where it is: `admin check` reports it
  }
  const data = Buffer.concat(parts, n);
  return data.byteLength === r.size && sha256Hex(data) === r.hash ? data : null;
}
